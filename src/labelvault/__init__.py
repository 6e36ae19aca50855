"""LabelVault: a self-hosted labeling platform that keeps every client's data sealed."""

__version__ = "0.1.0"

"""crypto layer."""

"""API routers, one module per endpoint group."""

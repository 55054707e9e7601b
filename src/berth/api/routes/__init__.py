"""Docker Engine API routes, one module per object kind. Each route runs a named job."""

"""The control plane's routers, one module per domain."""

"""HTTP routers of the data plane, one module per surface."""

"""The data plane's side of the control plane: its client, caches, circuit breaker, release
source, usage and audit shippers, and readiness probe."""

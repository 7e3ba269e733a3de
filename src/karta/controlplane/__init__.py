"""The control plane: identity, credentials, projects, metering, budgets and audit."""

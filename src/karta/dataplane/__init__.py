"""The data plane: the FastAPI app that serves the session protocol."""

"""Shared primitives: used by both planes, the CLI and the clients; they import nothing else of
Karta's."""

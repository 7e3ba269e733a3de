"""The gateway: participants' messages between sessions, projects and instances."""

from karta.dataplane.gateway.service import Gateway

__all__ = ["Gateway"]

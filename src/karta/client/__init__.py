"""A Python client for Karta's session API."""

from karta.client.http import KartaAPIError, KartaClient

__all__ = ["KartaAPIError", "KartaClient"]

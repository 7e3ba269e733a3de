"""A Python client for Karta's session API."""

from karta.client.base import KartaAPIError
from karta.client.http import KartaClient

__all__ = ["KartaAPIError", "KartaClient"]

"""loxo's Python client: the control API (async and sync) and S3 transfers.

from gateway.client import Client, AsyncClient, LoxoError
"""

from gateway.client.api import AsyncClient, Client, LoxoError

__all__ = ["AsyncClient", "Client", "LoxoError"]

"""Idle connections between Karta's servers and clients (`karta.core.http_keepalive`): a
client drops an idle connection before the server would close it, so no request is sent on a
connection that is being closed. With httpx's and uvicorn's defaults (5 s each) such requests
failed (`ReadError`), and between the planes that was a 503."""

from __future__ import annotations

import httpx
import uvicorn
from fastapi import FastAPI

from karta.cli.serve import plane_server
from karta.controlplane.notify import DataPlanes
from karta.core.http_keepalive import CLIENT_KEEPALIVE, SERVER_KEEPALIVE
from karta.dataplane.cluster.forward import Forwarder
from karta.dataplane.control.client import ControlPlaneClient
from karta.testing import ScriptedModel

LOAD_BALANCER_IDLE = 60  # the usual default (AWS ALB, GCP, nginx upstreams keep theirs longer)


def idle_expiry(client: httpx.AsyncClient) -> float | None:
    return client._transport._pool._keepalive_expiry  # type: ignore[attr-defined]


def test_servers_outlive_load_balancers_and_clients_give_up_before_any_server():
    assert SERVER_KEEPALIVE > LOAD_BALANCER_IDLE
    uvicorn_default = uvicorn.Config(FastAPI()).timeout_keep_alive
    assert min(uvicorn_default, SERVER_KEEPALIVE) > CLIENT_KEEPALIVE


async def test_the_planes_and_the_scripted_model_keep_idle_connections_that_long():
    server = plane_server(FastAPI(), "127.0.0.1", 0, "warning")
    try:
        assert server.config.timeout_keep_alive == SERVER_KEEPALIVE
    finally:
        server.sock.close()
    with ScriptedModel() as model:
        assert model._server._server.config.timeout_keep_alive == SERVER_KEEPALIVE


async def test_every_client_of_another_karta_server_drops_idle_connections_first():
    clients = [
        ControlPlaneClient("http://127.0.0.1:9", None)._http,
        Forwarder(None)._client,
        DataPlanes(("http://127.0.0.1:9",), None)._client,
    ]
    for client in clients:
        assert idle_expiry(client) == CLIENT_KEEPALIVE
        await client.aclose()

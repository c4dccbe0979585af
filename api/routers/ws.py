"""``/ws``: the WebSocket endpoint (protocol in ``api.ws.protocol``, back-pressure in ``api.ws.client``)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from api.deps import get_resources
from api.ws.session import serve
from api.ws.snapshot import Snapshots

router = APIRouter()


@router.websocket("/ws")
async def websocket(websocket: WebSocket) -> None:
    """Live trades, bars, indicators and anomalies; see ``api.ws.protocol`` for the messages."""
    resources = await get_resources(websocket)
    await serve(
        websocket,
        resources.settings,
        resources.hub,
        resources.catalog,
        resources.metrics,
        Snapshots(resources.store),
        resources.limits,
    )

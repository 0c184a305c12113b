"""A FastAPI application with HTTP routes and a wyre endpoint side by side.

Run it under uvicorn like any ASGI application::

    python -m uvicorn examples.fastapi_app:app --port 8000

or as a script, which shuts down wyre's way on Ctrl-C or SIGTERM (running
handlers finish, clients get 1001) instead of uvicorn's (1012 at once)::

    python examples/fastapi_app.py --port 8000

Then: ``GET /status`` counts the wyre connections, ``POST /broadcast?text=hi``
sends a message to each, and wyre clients connect to
``ws://localhost:8000/ws/?name=ada`` (the name is checked by the
``authenticate`` hook and becomes the connection's identity).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn
from fastapi import FastAPI

import wyre


def authenticate(handshake: wyre.Handshake) -> str:
    """Who is connecting: here a name in the query; a real application checks a token."""
    name = handshake.query.get("name", "")
    if not name.isalnum():
        raise wyre.Reject(401, "say who you are: ?name=...")
    return name


server = wyre.Server(authenticate=authenticate)


@server.on("request", "greet")
def greet(ctx: wyre.Context) -> dict[str, str]:
    return {"text": f"hello {ctx.connection.identity}"}


@server.on("request", "slow")
async def slow(ctx: wyre.Context) -> dict[str, float]:
    await asyncio.sleep(ctx.message["seconds"])
    return {"slept": ctx.message["seconds"]}


ws = server.asgi()
app = FastAPI(lifespan=ws.lifespan)  # the wyre server closes when the application stops
app.mount("/ws", ws)


@app.get("/status")
def status() -> dict[str, int]:
    return {"connections": len(server.connections)}


@app.post("/broadcast")
async def broadcast(text: str) -> dict[str, int]:
    connections = list(server.connections.values())
    await asyncio.gather(*(c.send({"type": "news", "text": text}) for c in connections))
    return {"sent": len(connections)}


class GracefulServer(uvicorn.Server):
    """uvicorn closing the wyre server before it closes its own sockets.

    uvicorn's shutdown closes every WebSocket with 1012 and only then ends
    the lifespan; closing wyre first gives running handlers their
    ``shutdown_grace`` and clients a 1001.
    """

    async def shutdown(self, sockets: Any = None) -> None:
        await ws.shutdown()
        await super().shutdown(sockets)


def main() -> None:
    parser = argparse.ArgumentParser(description="FastAPI and wyre side by side")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    GracefulServer(uvicorn.Config(app, host=args.host, port=args.port)).run()


if __name__ == "__main__":
    main()

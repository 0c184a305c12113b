"""The echo server that ``bench/workers.py`` runs under ``wyre serve --workers N``."""

from __future__ import annotations

from typing import Any

import wyre

server = wyre.Server(codec="orjson")


@server.on("request", "echo")
def echo(ctx: Any) -> Any:
    return ctx.message

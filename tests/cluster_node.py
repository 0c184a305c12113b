"""A cluster node in a process of its own, for ``test_cluster_processes.py``.

Usage::

    python tests/cluster_node.py REDIS_URL PREFIX [--heartbeat S] [--node-ttl S]

It starts a :class:`wyre.Server` on a free loopback port with a
:class:`wyre.RedisBackplane`, prints one JSON line once it is part of the
cluster (``{"port": ..., "node_id": ..., "pid": ...}``), and serves until
SIGTERM (it closes gracefully) or SIGKILL (it vanishes, as a crashed machine).

Its clients drive the cluster through these requests; a failure comes back
as the ERROR reply, whose ``error`` is the exception's class name:

* ``whoami``: ``{"id": this connection's id on the server, "node": the node id}``;
* ``join`` ``{"group"}``: this connection joins the group;
* ``relay`` ``{"to", "message", "timeout"}``: ``server.peer(to).request(message,
  timeout=timeout)``, answered with the reply's message;
* ``broadcast`` ``{"message", "group"}``;
* ``presence`` ``{"group"}`` and ``nodes``: ``{"presence": {...}}``, ``{"nodes": [...]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

import wyre


def serve(args: argparse.Namespace) -> wyre.Server:
    backplane = wyre.RedisBackplane(
        args.redis_url, prefix=args.prefix, heartbeat=args.heartbeat, node_ttl=args.node_ttl
    )
    server = wyre.Server(backplane=backplane)

    @server.on("request", "whoami")
    def whoami(ctx: wyre.Context) -> dict[str, str]:
        return {"id": ctx.connection.id, "node": server.node_id}

    @server.on("request", "join")
    async def join(ctx: wyre.Context) -> dict[str, bool]:
        await ctx.connection.join(ctx.message["group"])
        return {"joined": True}

    @server.on("request", "relay")
    async def relay(ctx: wyre.Context) -> Any:
        peer = server.peer(ctx.message["to"])
        reply = await peer.request(ctx.message["message"], timeout=ctx.message["timeout"])
        return reply.message

    @server.on("request", "broadcast")
    async def broadcast(ctx: wyre.Context) -> dict[str, bool]:
        await server.broadcast(ctx.message["message"], group=ctx.message.get("group"))
        return {"sent": True}

    @server.on("request", "presence")
    async def presence(ctx: wyre.Context) -> dict[str, Any]:
        return {"presence": await server.presence(ctx.message.get("group"))}

    @server.on("request", "nodes")
    async def nodes(ctx: wyre.Context) -> dict[str, Any]:
        return {"nodes": await server.nodes()}

    return server


async def main(args: argparse.Namespace) -> None:
    server = serve(args)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await server.listen(port=0, host="127.0.0.1")
    print(json.dumps({"port": server.port, "node_id": server.node_id, "pid": os.getpid()}))
    sys.stdout.flush()
    await stopping.wait()
    await server.close(grace=0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("redis_url")
    parser.add_argument("prefix")
    parser.add_argument("--heartbeat", type=float, default=0.2)
    parser.add_argument("--node-ttl", type=float, default=1.0)
    asyncio.run(main(parser.parse_args()))

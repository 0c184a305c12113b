"""``wyre serve MODULE:ATTR``: run a Server, on one core or on several.

With ``--workers N`` (N > 1) a supervisor starts N worker processes that
share one port through ``SO_REUSEPORT`` (the kernel spreads new connections
over them), restarts a worker that dies (at most :data:`MAX_RESTARTS` per
minute, then it gives up and exits 1), and on SIGTERM or SIGINT asks every
worker to close gracefully (close code 1001, running handlers get
``shutdown_grace``) and exits 0.

Each process is a separate server: without a backplane, groups, broadcast,
``peer()`` and presence would reach one process's connections only, so
with N > 1 they raise a clear error instead, and the command warns at start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from ..config import LOG_LEVELS
from ..server import Server
from .shell import OK, USAGE, UsageError, fail

__all__ = ["MAX_RESTARTS", "add_parser", "load"]

MAX_RESTARTS = 5
"""Worker restarts allowed per worker per minute before the supervisor gives up."""

STOP_TIMEOUT = 60.0
"""How long the supervisor waits for workers to close before killing them."""


def add_parser(commands: Any) -> None:
    """Add ``serve`` to the command line."""
    serve = commands.add_parser(
        "serve",
        help="run a wyre.Server (on every core with --workers)",
        description="Run the wyre.Server found at MODULE:ATTR (or returned by a "
        "zero-argument function there). SIGTERM or Ctrl-C closes it gracefully.",
        epilog="examples:\n"
        "  wyre serve app:server --port 8765\n"
        "  wyre serve app:make_server --workers 4 --backplane redis://127.0.0.1:6379/0\n"
        "  wyre serve app:server --port 443 --ssl-certfile cert.pem --ssl-keyfile key.pem\n\n"
        "With --workers N > 1, the processes share the port (SO_REUSEPORT: Linux, BSD,\n"
        "macOS); groups, broadcast and peer() then need a --backplane.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("app", metavar="MODULE:ATTR", help="where the Server (or a factory) is")
    serve.add_argument("--host", default=None, help="address to bind (default: every address)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    serve.add_argument("--backplane", default=None, metavar="URL", help="redis:// URL")
    serve.add_argument("--transport", choices=("websockets", "picows"), default=None)
    serve.add_argument(
        "--log-level",
        default="info",
        choices=sorted(k for k in LOG_LEVELS if isinstance(k, str)),
        help="default: info",
    )
    serve.add_argument("--ssl-certfile", default=None, metavar="FILE")
    serve.add_argument("--ssl-keyfile", default=None, metavar="FILE")
    serve.add_argument("--worker-of", type=int, default=0, help=argparse.SUPPRESS)
    serve.set_defaults(run=run)


def load(target: str) -> Server:
    """The Server at ``MODULE:ATTR``: the attribute itself, or what calling it returns.

    The current directory is importable, as for ``python -m``.

    Raises:
        UsageError: no such module or attribute, or not a Server.
    """
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"expected MODULE:ATTR (e.g. app:server), not {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from exc
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(found, Server) and callable(found):
        found = found()
    if not isinstance(found, Server):
        raise UsageError(f"{target} is a {type(found).__name__}, not a wyre.Server")
    return found


def run(args: argparse.Namespace) -> int:
    """``wyre serve``: one process, or a supervisor of several."""
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise UsageError("--ssl-certfile and --ssl-keyfile go together")
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(process)d %(levelname)s %(name)s [%(connection_id)s]: %(message)s",
            defaults={"connection_id": "-"},  # records about one connection carry its id
        )
    )
    logging.basicConfig(level=LOG_LEVELS[args.log_level], handlers=[handler])
    if args.workers > 1 and not args.worker_of:
        return _supervise(args)
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    """Run one server until SIGTERM/SIGINT; then close it gracefully."""
    server = load(args.app)
    workers = args.worker_of or 1
    changes: dict[str, Any] = {"log_level": args.log_level}
    if args.transport is not None:
        changes["transport"] = args.transport
    if args.backplane is not None:
        changes["backplane"] = args.backplane
    if workers > 1:
        changes["reuse_port"] = True
    try:
        server.configure(**changes)
    except (TypeError, ValueError, ImportError) as exc:
        raise UsageError(str(exc)) from exc
    server.hub.workers = workers
    if workers > 1 and server.hub.backplane is None and args.worker_of and _first_worker():
        fail(
            f"warning: {workers} workers and no backplane: groups, broadcast, peer() and "
            "presence would each see one process, so they raise; pass --backplane redis://..."
        )
    ssl_context = None
    if args.ssl_certfile is not None:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load the certificate: {exc}") from exc
    try:
        await server.listen(host=args.host, port=args.port, ssl=ssl_context)
    except OSError as exc:
        fail(f"cannot listen on {args.host or '*'}:{args.port}: {exc}")
        return USAGE
    scheme = "wss" if ssl_context is not None else "ws"
    fail(f"listening on {scheme}://{args.host or '0.0.0.0'}:{server.port} (pid {os.getpid()})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    fail(f"closing (pid {os.getpid()})")
    await server.close()
    return OK


def _first_worker() -> bool:
    return os.environ.get("WYRE_WORKER_INDEX") == "0"


def _supervise(args: argparse.Namespace) -> int:
    """Start the workers, keep them running, stop them on SIGTERM/SIGINT."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError("--workers > 1 needs SO_REUSEPORT (Linux, BSD, macOS), missing here")
    load(args.app)  # fail now, once, rather than in every worker
    port, holder = _reserve(args.host, args.port)
    command = [sys.executable, "-m", "wyre", *_worker_arguments(args, port)]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers: list[subprocess.Popen[bytes] | None] = [None] * args.workers
    restarts: list[list[float]] = [[] for _ in workers]
    status = OK
    fail(f"supervising {args.workers} workers on port {port} (pid {os.getpid()})")
    try:
        while not stopping:
            for index, worker in enumerate(workers):
                if worker is not None and worker.poll() is None:
                    continue
                if worker is not None:
                    now = time.monotonic()
                    restarts[index] = [t for t in restarts[index] if now - t < 60] + [now]
                    if len(restarts[index]) > MAX_RESTARTS:
                        fail(f"worker {index} died {MAX_RESTARTS} times in a minute: giving up")
                        stopping, status = True, 1
                        break
                    fail(f"worker {index} (pid {worker.pid}) exited with {worker.returncode}: "
                         "restarting it")  # fmt: skip
                env = {**os.environ, "WYRE_WORKER_INDEX": str(index)}
                workers[index] = subprocess.Popen(command, env=env)
            time.sleep(0.1)
    finally:
        _stop_all([w for w in workers if w is not None])
        holder.close()
    return status


def _reserve(host: str | None, port: int) -> tuple[int, socket.socket]:
    """Hold the port (a free one for port 0) with SO_REUSEPORT, so the workers agree on it."""
    family = socket.AF_INET6 if host is None and socket.has_ipv6 else socket.AF_INET
    if host is not None and ":" in host:
        family = socket.AF_INET6
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        with contextlib.suppress(OSError):
            holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        holder.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
    except OSError as exc:
        holder.close()
        raise UsageError(f"cannot use port {port}: {exc}") from exc
    return int(holder.getsockname()[1]), holder  # bound, not listening: gets no connection


def _worker_arguments(args: argparse.Namespace, port: int) -> list[str]:
    arguments = ["serve", args.app, "--port", str(port), "--worker-of", str(args.workers)]
    arguments += ["--log-level", args.log_level]
    for flag, value in (
        ("--host", args.host),
        ("--backplane", args.backplane),
        ("--transport", args.transport),
        ("--ssl-certfile", args.ssl_certfile),
        ("--ssl-keyfile", args.ssl_keyfile),
    ):
        if value is not None:
            arguments += [flag, value]
    return arguments


def _stop_all(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every worker, wait for them to close, kill what is left."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for worker in workers:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            fail(f"worker pid {worker.pid} did not close in time: killing it")
            worker.kill()
            worker.wait()

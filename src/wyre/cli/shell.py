"""``wyre request | send | listen | connect``: a wyre client for the shell.

Messages are typed and printed as JSON, one per line, whatever the codec on
the wire (``--codec``). ``request`` and ``send`` print the application's
part of each answer (without the protocol's ``key`` and ``direction``);
``listen`` and ``connect`` print whole frames, so that a request can be told
from a message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
from typing import Any, TextIO
from urllib.parse import urlsplit

import wyre

__all__ = [
    "ERROR_REPLY",
    "OK",
    "TIMED_OUT",
    "UNREACHABLE",
    "USAGE",
    "UsageError",
    "add_parsers",
    "fail",
]

OK = 0
ERROR_REPLY = 1
"""``request``: the server answered with an ERROR (its body is printed)."""
USAGE = 2
"""A usage error: bad arguments, a bad URL, JSON that is not an object."""
UNREACHABLE = 3
"""Cannot connect (refused handshake included), or the connection closed."""
TIMED_OUT = 4
"""No answer (reply, acknowledgement) within ``--timeout``."""

PROTOCOL_FIELDS = ("key", "direction")
LISTENER_CANNOT_ANSWER = {"error": "NotAnswered", "message": "a wyre listener cannot answer"}


class UsageError(Exception):
    """The command line cannot be run as given (exit status 2)."""


def fail(message: str) -> None:
    """One diagnostic line on stderr."""
    print(f"wyre: {message}", file=sys.stderr, flush=True)


def failed(exc: BaseException) -> int:
    """Say why a command failed (on stderr); its exit status."""
    fail(str(exc))
    if isinstance(exc, wyre.RequestTimeout):
        return TIMED_OUT
    if isinstance(exc, wyre.ConnectionClosed):
        return UNREACHABLE
    return USAGE


def add_parsers(commands: Any) -> None:
    """Add ``request``, ``send``, ``listen`` and ``connect`` to the command line."""
    formatter = argparse.RawDescriptionHelpFormatter

    request = commands.add_parser(
        "request",
        help="send a request; print its partials, then its reply",
        description="Send a request and print each partial reply as a JSON line as it "
        "arrives, then the reply.",
        epilog="examples:\n"
        '  wyre request ws://127.0.0.1:8765 \'{"type": "add", "a": 2, "b": 3}\'\n'
        '  wyre request wss://example.com/ws \'{"type": "me"}\' --header \'Authorization: '
        "Bearer T'\n\n"
        "exit status: 0 reply, 1 error reply (printed), 2 usage, 3 cannot connect or "
        "closed, 4 timeout",
        formatter_class=formatter,
    )
    _common(request)
    request.add_argument("json", help="the request: a JSON object")
    request.add_argument("--timeout", type=_seconds, default=30.0, help="seconds (default 30)")
    request.set_defaults(run=lambda args: _run(_request(args)))

    send = commands.add_parser(
        "send",
        help="send a one-way message",
        description="Send a one-way message; with --ack, wait until the server acknowledged it.",
        epilog="examples:\n"
        '  wyre send ws://127.0.0.1:8765 \'{"type": "chat", "text": "hi"}\'\n'
        '  wyre send ws://127.0.0.1:8765 \'{"type": "chat", "text": "hi"}\' --ack\n\n'
        "exit status: 0 written (acknowledged with --ack), 2 usage, 3 cannot connect or "
        "closed, 4 no acknowledgement in time",
        formatter_class=formatter,
    )
    _common(send)
    send.add_argument("json", help="the message: a JSON object")
    send.add_argument("--ack", action="store_true", help="wait for the acknowledgement")
    send.add_argument("--timeout", type=_seconds, default=30.0, help="seconds (default 30)")
    send.set_defaults(run=lambda args: _run(_send(args)))

    listen = commands.add_parser(
        "listen",
        help="print every frame that arrives",
        description="Print every frame that arrives as a JSON line, until interrupted. "
        "Requests get an ERROR reply: a listener cannot answer.",
        epilog="example:\n  wyre listen ws://127.0.0.1:8765 --header 'Cookie: session=abc'\n\n"
        "exit status: 0 interrupted, 2 usage, 3 cannot connect or the server closed",
        formatter_class=formatter,
    )
    _common(listen)
    listen.set_defaults(run=lambda args: _run(_listen(args)))

    connect = commands.add_parser(
        "connect",
        help="an interactive session",
        description="Each JSON line typed is sent; a line starting with ? is sent as a "
        "request and its partials and reply are shown. Frames that arrive are printed "
        "as they come. End with Ctrl-D.",
        epilog="example:\n  wyre connect ws://127.0.0.1:8765\n"
        '  > {"type": "chat", "text": "hi"}\n'
        '  > ?{"type": "add", "a": 2, "b": 3}\n'
        '  < reply {"sum": 5}\n',
        formatter_class=formatter,
    )
    _common(connect)
    connect.add_argument("--timeout", type=_seconds, default=30.0, help="request timeout")
    connect.set_defaults(run=lambda args: _run(_connect(args)))


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument("url", help="ws:// or wss:// URL of a wyre server")
    command.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra header for the handshake (repeatable)",
    )
    command.add_argument(
        "--codec",
        choices=("json", "msgpack"),
        default="json",
        help="the codec on the wire (input and output are JSON either way)",
    )
    command.add_argument(
        "--insecure", action="store_true", help="wss://: do not verify the certificate"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("a timeout must be positive")
    return value


def _run(main: Any) -> int:
    """Run a command's coroutine; Ctrl-C ends it quietly."""
    try:
        return int(asyncio.run(main))
    except KeyboardInterrupt:
        return OK


# -- parsing ---------------------------------------------------------------------------


def parse_message(text: str) -> dict[str, Any]:
    """A JSON object from the command line.

    Raises:
        UsageError: not JSON, or not an object.
    """
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"bad JSON: {exc}") from None
    if not isinstance(message, dict):
        raise UsageError(f"a message must be a JSON object, not {type(message).__name__}")
    return message


def parse_url(url: str) -> str:
    """Check a ws:// or wss:// URL before connecting (a typo is a usage error)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad URL {url!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise UsageError(f"bad URL {url!r}: expected ws://host[:port]/path or wss://...")
    del port
    return url


def parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"bad header {line!r}: expected 'Name: value'")
        headers.append((name.strip(), value.strip()))
    return headers


def body(message: Any) -> Any:
    """The application's part of an answer: without the protocol's fields."""
    if isinstance(message, dict):
        return {k: v for k, v in message.items() if k not in PROTOCOL_FIELDS}
    return message


def dumps(message: Any) -> str:
    """One JSON line; values JSON cannot hold (msgpack bytes) are written as text."""
    return json.dumps(message, ensure_ascii=False, default=_printable)


def _printable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def emit(message: Any, out: TextIO | None = None) -> None:
    print(dumps(message), file=out or sys.stdout, flush=True)


# -- connecting -------------------------------------------------------------------------


async def _open(args: argparse.Namespace, client: wyre.Client) -> wyre.Connection | None:
    """Connect as the arguments say; None (and a diagnostic) when that fails."""
    url = parse_url(args.url)
    headers = parse_headers(args.header)
    ssl_context = None
    if args.insecure and url.startswith("wss:"):
        import ssl

        ssl_context = ssl.create_default_context()
        ssl_context.check_hostname = False
        ssl_context.verify_mode = ssl.CERT_NONE
    try:
        return await client.connect(url, headers=headers, ssl=ssl_context)
    except wyre.ConnectError as exc:
        fail(str(exc))
        return None


def _client(args: argparse.Namespace) -> wyre.Client:
    try:
        return wyre.Client(codec=args.codec, request_timeout=getattr(args, "timeout", 30.0))
    except ImportError as exc:
        raise UsageError(str(exc)) from None


async def _request(args: argparse.Namespace) -> int:
    message = parse_message(args.json)
    async with _client(args) as client:
        conn = await _open(args, client)
        if conn is None:
            return UNREACHABLE
        request = conn.request(message, timeout=args.timeout)
        try:
            async for partial in request.partials():
                emit(body(partial.message))
            emit(body((await request).message))
        except wyre.RequestError as exc:
            emit(body(exc.context.message))
            return ERROR_REPLY
        except (wyre.WyreError, TypeError) as exc:
            return failed(exc)
        return OK


async def _send(args: argparse.Namespace) -> int:
    message = parse_message(args.json)
    async with _client(args) as client:
        conn = await _open(args, client)
        if conn is None:
            return UNREACHABLE
        try:
            await conn.send(message, ack=args.ack, timeout=args.timeout)
        except (wyre.WyreError, TypeError) as exc:
            return failed(exc)
        if args.ack and not conn.extensions:
            fail("the server does not acknowledge (it speaks the original protocol): written")
        return OK


def _answer_nothing(ctx: wyre.Context) -> Any:
    return ctx.error(LISTENER_CANNOT_ANSWER)


async def _until_closed_or_interrupted(conn: wyre.Connection) -> int:
    """Wait for the connection to close (exit 3) or for SIGINT/SIGTERM (exit 0)."""
    closed = asyncio.Event()
    conn.endpoint.on("close", lambda *_: closed.set())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    if conn.closed:
        closed.set()
    waiters = [asyncio.ensure_future(closed.wait()), asyncio.ensure_future(stop.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    if stop.is_set():
        return OK
    fail(f"the server closed the connection: {conn.close_code} {conn.close_reason or ''}".rstrip())
    return UNREACHABLE


async def _listen(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        client.on("message", lambda ctx: emit(ctx.message))

        @client.on("request")
        def request(ctx: wyre.Context) -> Any:
            emit(ctx.message)
            return _answer_nothing(ctx)

        conn = await _open(args, client)
        if conn is None:
            return UNREACHABLE
        return await _until_closed_or_interrupted(conn)


# -- connect: an interactive session ---------------------------------------------------------

PROMPT = "> "


class Console:
    """Prints incoming frames above the line being typed, and reads lines in a thread."""

    def __init__(self) -> None:
        self.interactive = sys.stdin.isatty()
        self._readline: Any = None
        if self.interactive:
            try:
                import readline
            except ImportError:  # pragma: no cover - Windows
                readline = None  # type: ignore[assignment]
            self._readline = readline
        self._lock = threading.Lock()

    def show(self, text: str) -> None:
        """Print a line without breaking the one being typed: clear it, print, redraw it."""
        with self._lock:
            if self.interactive:
                typed = self._readline.get_line_buffer() if self._readline is not None else ""
                sys.stdout.write(f"\r\x1b[2K{text}\n{PROMPT}{typed}")
            else:
                sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def read(self) -> str | None:
        """One line (None at end of input); blocking: run in a thread."""
        try:
            return input(PROMPT if self.interactive else "")
        except EOFError:
            return None


async def _connect(args: argparse.Namespace) -> int:
    console = Console()
    async with _client(args) as client:
        client.on("message", lambda ctx: console.show(f"< {dumps(ctx.message)}"))

        @client.on("request")
        def request(ctx: wyre.Context) -> Any:
            console.show(f"< request {dumps(ctx.message)} (answered: a console cannot answer)")
            return _answer_nothing(ctx)

        conn = await _open(args, client)
        if conn is None:
            return UNREACHABLE
        pending: set[asyncio.Task[None]] = set()
        while True:
            line = await asyncio.to_thread(console.read)
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            if conn.closed:
                fail(f"the connection is closed: {conn.close_code}")
                return UNREACHABLE
            is_request = line.startswith("?")
            try:
                message = parse_message(line[1:] if is_request else line)
            except UsageError as exc:
                console.show(f"! {exc}")
                continue
            if is_request:
                task = asyncio.ensure_future(_show_request(conn, message, args.timeout, console))
                pending.add(task)
                task.add_done_callback(pending.discard)
            else:
                try:
                    await conn.send(message)
                except wyre.WyreError as exc:
                    console.show(f"! {exc}")
        for task in list(pending):  # let answers under way arrive, within their timeout
            with contextlib.suppress(Exception):
                await task
        return OK


async def _show_request(
    conn: wyre.Connection, message: dict[str, Any], within: float, console: Console
) -> None:
    request = conn.request(message, timeout=within)
    try:
        async for partial in request.partials():
            console.show(f"< partial {dumps(body(partial.message))}")
        console.show(f"< reply {dumps(body((await request).message))}")
    except wyre.RequestError as exc:
        console.show(f"< error {dumps(body(exc.context.message))}")
    except (wyre.WyreError, TypeError) as exc:
        console.show(f"! {exc}")

"""Serving wyre from an ASGI server (uvicorn, hypercorn) and the web frameworks on it.

:meth:`Server.asgi() <wyre.Server.asgi>` returns an :class:`AsgiApp`: an ASGI 3
application that serves the server's connections, to run on its own
(``uvicorn module:app``) or mounted beside HTTP routes (Starlette, FastAPI)::

    server = wyre.Server()
    ws = server.asgi()
    app = FastAPI(lifespan=ws.lifespan)   # the Server shuts down with the application
    app.mount("/ws", ws)                  # clients connect to ws://host/ws/

The application plays the part a driver plays for a listening socket: it
builds a :class:`~wyre.Handshake` from the ASGI scope, puts it to the
server's gate (origins, connection limits, ``authenticate``: the same
:class:`~wyre.admission.Admission` as the socket drivers), accepts with the
subprotocol wyre selects, and hands each connection a :class:`AsgiTransport`.

The ASGI server owns the socket, so some WebSocket rules are its own, not
wyre's: keepalive pings, the size of one frame, UTF-8 checks, permessage-deflate,
the time a closing handshake may take, the request before the application is
called. ``docs/asgi.md`` lists what that changes.

::

    receive() ─ websocket.receive ─ size check ─ receiver.receive
    receiver ─ write() ─ queue ─ writer task ─ send(websocket.send)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ..browser import client_script_body
from ..exceptions import Reject
from ..handshake import Handshake
from ..protocol.negotiation import select
from ..transport import TransportClosing, close_status, socket_debug
from .upgrade import remote_address

if TYPE_CHECKING:
    from ..config import Options
    from ..transport import Gate, OnOpen, Receiver

__all__ = ["AsgiApp", "AsgiTransport", "handshake_of_scope"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SHUTTING_DOWN = (503, "The server is shutting down.")
"""The refusal of a handshake that arrives (or is being admitted) while the app stops."""

_DENIAL = "websocket.http.response"
"""The ASGI extension that lets an application answer a handshake with any HTTP response."""

_TEXT_PLAIN = [(b"content-type", b"text/plain; charset=utf-8")]


def handshake_of_scope(scope: Scope) -> Handshake:
    """The :class:`~wyre.Handshake` of a ``websocket`` scope.

    ``path`` is the path the client requested, query excluded: the scope's
    ``raw_path`` (undecoded, as the socket drivers report it) when the
    server gives one, else ``path``. Under a mount (``app.mount("/ws", ...)``)
    the prefix is included, so the hook sees the same path whichever way the
    application is served.
    """
    raw = scope.get("raw_path")
    if raw:
        path = bytes(raw).decode("latin-1").partition("?")[0]
    else:
        path = str(scope.get("path") or "/")
        root = str(scope.get("root_path") or "")
        if root and not path.startswith(root):  # servers that strip root_path from path
            path = root + path
    headers = [
        (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
        for name, value in scope.get("headers") or ()
    ]
    client = scope.get("client")
    return Handshake(
        path=path,
        query_string=bytes(scope.get("query_string") or b"").decode("latin-1"),
        headers=headers,
        remote_address=remote_address(tuple(client)) if client else None,
    )


class AsgiApp:
    """An ASGI 3 application serving a :class:`~wyre.Server`'s connections.

    Made by :meth:`Server.asgi() <wyre.Server.asgi>` from the pieces a
    driver's ``listen`` gets (options, ``on_open``, the gate), so a
    connection through an ASGI server is admitted, counted and served exactly
    like one through a listening socket; ``server.connections`` holds both.

    Scopes: ``websocket`` is served; ``lifespan`` starts the app and, on
    shutdown, stops it and closes the server (:meth:`lifespan` says what
    ASGI servers do to WebSockets before that); ``http`` gets the JavaScript
    client at the ``client_script`` path, when that option is set, and a 426
    otherwise (this path speaks WebSocket only).

    Frameworks do not pass the lifespan on to mounted applications: give
    :meth:`lifespan` to the framework instead (``FastAPI(lifespan=ws.lifespan)``,
    ``Starlette(lifespan=ws.lifespan)``), or enter it in the framework's own
    lifespan (``async with ws.lifespan(): yield``).
    """

    def __init__(
        self,
        options: Options,
        on_open: OnOpen,
        gate: Gate | None = None,
        *,
        start: Callable[[], Awaitable[None]] | None = None,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``start`` and ``close`` are what the lifespan awaits at its start and end.

        (For a Server: joining its cluster, and its ``close``.)
        """
        self.options = options
        self.on_open = on_open
        self.gate = gate
        self._start = start
        self._close = close
        self.accepting = True
        """Whether handshakes are admitted; otherwise they are refused with 503."""
        self.handshakes: set[AsgiTransport] = set()
        """Handshakes in progress: not yet accepted or refused."""
        self._idle: asyncio.Future[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point: one call per scope, for as long as it lasts.

        Raises:
            ValueError: a scope type other than websocket, lifespan and http
                (the ASGI specification asks applications to refuse those).
        """
        kind = scope["type"]
        if kind == "websocket":
            await AsgiTransport(self, scope, receive, send).serve()
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await _http(scope, send, self.options.client_script)
        else:
            raise ValueError(f"wyre's ASGI application does not serve {kind!r} scopes")

    # -- starting and stopping ------------------------------------------------

    def stop_accepting(self) -> None:
        """Refuse every handshake from now on (503), those being admitted included.

        Open connections are left alone: closing them is the server's.
        """
        self.accepting = False
        for transport in list(self.handshakes):
            transport.refuse(*SHUTTING_DOWN)

    def handshake_ended(self, transport: AsgiTransport) -> None:
        """``transport`` was accepted or refused (or its client left)."""
        self.handshakes.discard(transport)
        idle = self._idle
        if not self.handshakes and idle is not None and not idle.done():
            idle.set_result(None)

    async def wait_handshakes(self) -> None:
        """Wait until no handshake is in progress (after :meth:`stop_accepting`: soon).

        Before an ASGI server is shut down, so that handshakes refused with
        503 are answered as such, not cut short by the server.
        """
        await asyncio.sleep(0)  # a scope the server has just started registers itself
        while self.handshakes:
            if self._idle is None or self._idle.done():
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)

    def start_accepting(self) -> None:
        """Admit handshakes again (after :meth:`stop_accepting`)."""
        self.accepting = True

    async def startup(self) -> None:
        """Start what the server needs (its cluster, with a backplane), then accept."""
        if self._start is not None:
            await self._start()
        self.start_accepting()

    async def shutdown(self) -> None:
        """Stop accepting, then close the server: handlers finish, connections close with 1001."""
        self.stop_accepting()
        if self._close is not None:
            await self._close()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """The application's lifetime, for a framework's ``lifespan=`` (or ``async with``).

        A framework calls it with its own application (ignored here). On
        entry the server starts (:meth:`startup`: it joins its cluster, if it
        has a backplane); on exit the app stops accepting and the server
        closes (:meth:`shutdown`).

        Note that ASGI servers close their WebSockets *before* the lifespan
        ends: uvicorn sends each one 1012, hypercorn waits its
        ``graceful_timeout`` for them. For wyre's own graceful close (1001,
        running handlers given ``shutdown_grace``), close the server before
        the ASGI server closes its sockets; ``docs/asgi.md`` shows how.
        """
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ``lifespan`` scope, when this is the application the ASGI server runs."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    self.options.logger.exception("starting the server failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    self.options.logger.exception("closing the server failed")
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return


async def _http(scope: Scope, send: Send, script: str | None) -> None:
    """A plain HTTP request: the JavaScript client at ``script``, else 426.

    ``script`` (the ``client_script`` option) is matched against the path
    below the application's mount (``/wyre.js`` is ``/ws/wyre.js`` under
    ``app.mount("/ws", ...)``), as the socket drivers match it against theirs.
    """
    if script is None or scope.get("method") not in ("GET", "HEAD"):
        await _upgrade_required(send)
        return
    path = str(scope.get("path") or "/")
    root = str(scope.get("root_path") or "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    if path != script:
        await _upgrade_required(send)
        return
    body, etag = client_script_body()
    headers = [
        (b"content-type", b"text/javascript; charset=utf-8"),
        (b"etag", etag.encode()),
        (b"cache-control", b"no-cache"),
        # A public file: pages on other origins may import it as a module.
        (b"access-control-allow-origin", b"*"),
    ]
    tags = {
        tag.strip().removeprefix("W/")
        for name, value in scope.get("headers") or ()
        if bytes(name).lower() == b"if-none-match"
        for tag in bytes(value).decode("latin-1").split(",")
    }
    if etag in tags or "*" in tags:
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def _upgrade_required(send: Send) -> None:
    """Answer a plain HTTP request: this path speaks WebSocket only."""
    body = b"this endpoint speaks WebSocket only\n"
    await send(
        {
            "type": "http.response.start",
            "status": 426,
            "headers": [
                *_TEXT_PLAIN,
                (b"content-length", str(len(body)).encode()),
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _message_of(data: str | bytes, binary: bool) -> Message:
    """The ``websocket.send`` event for one message (ASGI wants text as str)."""
    if binary:
        return {"type": "websocket.send", "bytes": data.encode() if isinstance(data, str) else data}
    return {"type": "websocket.send", "text": data if isinstance(data, str) else data.decode()}


class AsgiTransport:
    """A :class:`~wyre.transport.Transport` over one ASGI ``websocket`` scope.

    The application's coroutine for the scope reads: it awaits ``receive()``
    and hands each message to the receiver. Pausing reading stops calling
    ``receive()``, which is how an ASGI server learns to stop reading the
    socket (uvicorn pauses it once a message waits unreceived). Writes are
    queued and sent by a writer task, since ``send()`` is a coroutine and
    :meth:`write` may not wait; that queue is the write buffer that
    ``write_limit`` and :meth:`drain` watch.
    """

    __slots__ = (
        "_aborted",
        "_admission",
        "_app",
        "_backlog",
        "_broken",
        "_close_sent",
        "_close_timer",
        "_closing",
        "_drain_waiters",
        "_dropping",
        "_idle",
        "_lost",
        "_low_water",
        "_max_size",
        "_options",
        "_out",
        "_paused",
        "_queued",
        "_receive",
        "_receiver",
        "_refusal",
        "_reported",
        "_resumed",
        "_scope",
        "_send",
        "_suspended",
        "_task",
        "_writer",
        "handshake",
        "identity",
        "subprotocol",
    )

    def __init__(self, app: AsgiApp, scope: Scope, receive: Receive, send: Send) -> None:
        self._app = app
        self._options = options = app.options
        self._scope = scope
        self._receive = receive
        self._send = send
        self.handshake: Handshake = handshake_of_scope(scope)
        self.identity: Any = None
        self.subprotocol: str | None = None
        self._receiver: Receiver | None = None
        self._max_size = options.max_message_size
        self._low_water = options.write_limit // 4
        self._task: asyncio.Task[Any] | None = None  # the ASGI server's task for this scope
        self._admission: asyncio.Task[bool] | None = None
        self._refusal: tuple[int, str] | None = None
        self._out: deque[tuple[str | bytes, bool]] = deque()
        self._queued = 0  # bytes (characters, for text) in _out
        self._writer: asyncio.Task[None] | None = None
        self._idle: asyncio.Future[None] | None = None  # the writer waits for work
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._paused = False  # the receiver asked for no messages
        self._resumed: asyncio.Future[None] | None = None  # the reader waits for a resume
        self._backlog: deque[str | bytes] = deque()
        self._suspended = False  # the reader is awaiting (receive() or a resume)
        self._closing: tuple[int, str] | None = None  # this side is closing with (code, reason)
        self._dropping = False  # nothing more goes to the receiver
        self._broken = False  # send() failed: the socket is going
        self._close_sent: tuple[int, str] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._reported = False  # connection_lost was called
        self._aborted = False
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- the scope's coroutine ---------------------------------------------------

    async def serve(self) -> None:
        """Admit, accept and read until the socket is gone; returns when it is."""
        app = self._app
        self._task = asyncio.current_task()
        app.handshakes.add(self)
        try:
            first = await self._handshake()
        finally:
            app.handshake_ended(self)
        if first is not None:
            await self._read(first)

    async def _handshake(self) -> asyncio.Future[Message] | None:
        """Accept or refuse; once accepted, the pending first ``receive()``."""
        message = await self._receive()
        if message["type"] != "websocket.connect":
            return None  # the client left before the application was called
        if not self._app.accepting:
            await self._deny(*SHUTTING_DOWN)
            return None
        # Only a disconnect can come before the accept: watch for one while
        # the gate decides, and keep what comes as the first message after.
        received = asyncio.ensure_future(self._receive())
        self._admission = admission = asyncio.get_running_loop().create_task(self._admit())
        try:
            await asyncio.wait({received, admission}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            received.cancel()
            admission.cancel()
            raise
        if not admission.done():  # the client left while the gate was deciding
            admission.cancel()
            await asyncio.wait({admission})
            return received if self._receiver is not None else None
        if admission.cancelled() or not admission.result():
            received.cancel()
            await self._deny(*(self._refusal or SHUTTING_DOWN))
            return None
        return received

    async def _admit(self) -> bool:
        """Put the handshake to the gate; open the connection in the step it says yes."""
        app = self._app
        identity = None
        if app.gate is not None:
            try:
                identity = await app.gate.admit(self.handshake)
            except Reject as exc:
                self._refusal = (exc.status, exc.reason)
                return False
            except Exception as exc:  # a gate raises only Reject: never leave the client hanging
                self._options.logger.exception("the handshake gate failed")
                self._refusal = (500, type(exc).__name__)
                return False
        if not app.accepting:
            self._refusal = SHUTTING_DOWN
            return False
        self._open(identity)  # in the step admit() returned in, as the Gate contract asks
        return True

    def refuse(self, status: int, reason: str) -> None:
        """Refuse a handshake being admitted (the app stops accepting)."""
        if self._receiver is None and self._admission is not None and not self._admission.done():
            self._refusal = (status, reason)
            self._admission.cancel()

    async def _deny(self, status: int, reason: str) -> None:
        """Answer the handshake with an HTTP error instead of accepting it.

        With the ``websocket.http.response`` extension the client gets this
        status and the reason as body, as from the socket drivers; without
        it, closing before the accept is all ASGI offers, and the server
        answers 403 whatever the status.
        """
        self._options.logger.debug("handshake refused with HTTP %s: %s", status, reason)
        extensions = self._scope.get("extensions") or {}
        try:
            if _DENIAL in extensions:
                body = (reason.rstrip("\n") + "\n").encode()
                await self._send(
                    {"type": "websocket.http.response.start", "status": status,
                     "headers": [*_TEXT_PLAIN, (b"content-length", str(len(body)).encode())]}
                )  # fmt: skip
                await self._send({"type": "websocket.http.response.body", "body": body})
            else:
                await self._send({"type": "websocket.close", "code": 1000})
        except OSError:  # the client is gone already
            pass

    def _open(self, identity: Any) -> None:
        """The gate said yes: queue the accept, make the receiver."""
        options = self._options
        self.identity = identity
        offered = [str(p) for p in self._scope.get("subprotocols") or ()]
        self.subprotocol = select(
            offered, options.subprotocols, options.extensions, options.speaks_msgpack
        )
        accept = {"type": "websocket.accept", "subprotocol": self.subprotocol}
        # Writes the receiver makes from now on go out after the accept.
        self._writer = asyncio.get_running_loop().create_task(self._write_all(accept))
        try:
            self._receiver = self._app.on_open(self)
        except Exception:
            options.logger.exception("opening a connection failed")
            self.abort()

    async def _read(self, first: asyncio.Future[Message]) -> None:
        """Hand every message to the receiver until the socket is gone (or aborted)."""
        receive = self._receive
        loop = asyncio.get_running_loop()
        source: Awaitable[Message] = first
        if self._reported:  # opening failed: abort() ran before there was a reader to stop
            first.cancel()
            return
        try:
            while True:
                self._suspended = True
                message = await source
                self._suspended = False
                kind = message["type"]
                if kind == "websocket.receive":
                    self._deliver(message)
                elif kind == "websocket.disconnect":
                    self._disconnected(message)
                    return
                if self._reported:
                    return  # aborted meanwhile
                while self._paused and not self._dropping:
                    self._suspended = True
                    self._resumed = loop.create_future()
                    await self._resumed
                    self._suspended = False
                source = receive()
        except asyncio.CancelledError:
            # abort() cancels the reader to end the scope; anyone else's
            # cancellation (the server's) goes on.
            task = self._task
            if not self._aborted or task is None or task.uncancel() > 0:
                raise
        finally:
            self._suspended = False
            self._resumed = None

    def _deliver(self, message: Message) -> None:
        if self._dropping:
            return  # this side is closing: nothing more is read
        text = message.get("text")
        data: str | bytes | None = text if text is not None else message.get("bytes")
        if data is None:
            return
        limit = self._max_size
        if limit is not None:
            size = len(data)
            # A character is 1 to 4 bytes of UTF-8: encode only when that matters.
            if size > limit or (
                text is not None and size * 4 > limit and len(text.encode()) > limit
            ):
                self._fail(1009, "message too big")
                return
        if self._paused:
            self._backlog.append(data)
            return
        assert self._receiver is not None
        self._receiver.receive(data)

    def _disconnected(self, message: Message) -> None:
        """``websocket.disconnect``: report the close code once.

        ASGI reports a socket lost without a closing handshake as 1005 ("no
        status received") with no reason, while servers relaying a close
        frame give its reason; the socket drivers report such a loss as
        1006, and so is it here.
        """
        code = int(message.get("code", 1005))
        received: tuple[int, str] | None = None
        if code != 1005 or "reason" in message:
            received = (code, str(message.get("reason") or ""))
        if self._close_sent is not None and received is not None:
            received = self._close_sent  # the server's echo of our own close
        self._lose(*close_status(received, self._close_sent))

    # -- writing ------------------------------------------------------------------

    async def _write_all(self, accept: Message) -> None:
        """Send the accept, then each queued message, then the close frame once asked."""
        send = self._send
        out = self._out
        loop = asyncio.get_running_loop()
        try:
            await send(accept)
            while True:
                while out:
                    data, binary = out[0]
                    await send(_message_of(data, binary))
                    out.popleft()
                    self._queued -= len(data)
                    if self._drain_waiters and self._queued <= self._low_water:
                        self._wake_drainers(None)
                closing = self._closing
                if closing is not None:
                    self._close_sent = closing
                    await send({"type": "websocket.close", "code": closing[0],
                                "reason": closing[1]})  # fmt: skip
                    return
                self._idle = loop.create_future()
                await self._idle
                self._idle = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The socket is going: the server reports how (the peer's close
            # code, say) in a disconnect, which the reader must get even while
            # reading is paused; writes and drains wait for that report.
            self._debug("send failed: %s", exc)
            self._broken = self._dropping = True
            self._wake_reader()

    def _wake_writer(self) -> None:
        idle = self._idle
        if idle is not None and not idle.done():
            idle.set_result(None)

    def _wake_drainers(self, error: Exception | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _wake_reader(self) -> None:
        resumed = self._resumed
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    # -- Transport ----------------------------------------------------------------

    def write(self, data: str | bytes, binary: bool) -> None:
        if self._reported:
            raise ConnectionError("socket closed")
        if self._closing is not None or self._broken:
            raise TransportClosing("closing handshake under way")
        self._out.append((data, binary))
        self._queued += len(data)
        idle = self._idle
        if idle is not None and not idle.done():
            idle.set_result(None)

    def write_buffer_size(self) -> int:
        return self._queued

    async def drain(self) -> None:
        if self._reported:
            raise ConnectionError("socket closed")
        if self._queued <= self._low_water and not self._broken:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        backlog = self._backlog
        # Messages received before the pause go first; the receiver may pause
        # again meanwhile, and then keeps the rest for later.
        while backlog and not self._paused and not self._dropping:
            assert self._receiver is not None
            self._receiver.receive(backlog.popleft())
        if not self._paused:
            self._wake_reader()

    async def close(self, code: int, reason: str) -> None:
        if not self._reported:
            self._begin_closing(code, reason)
        await asyncio.shield(self._lost)

    def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = self._dropping = True
        self._backlog.clear()
        writer, self._writer = self._writer, None
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        if not self._reported:
            self._lose(*close_status(None, self._close_sent))
        # Ending the scope's coroutine is how an ASGI application drops its
        # socket: the server closes it once the application returns.
        task = self._task
        if self._suspended and task is not None and not task.done():
            task.cancel()

    # -- closing ------------------------------------------------------------------

    def _begin_closing(self, code: int, reason: str) -> None:
        """Send the close frame after what is queued; bound the wait by ``close_timeout``."""
        if self._closing is not None:
            return
        self._closing = (code, reason)
        self._dropping = True
        self._backlog.clear()
        self._wake_writer()
        self._wake_reader()  # read on (even while paused) to see the disconnect
        timeout = self._options.close_timeout
        if timeout is not None:
            self._close_timer = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def _fail(self, code: int, reason: str) -> None:
        """A message broke wyre's rules: close with ``code``."""
        self._debug("failing the connection: %s %s", code, reason)
        self._begin_closing(code, reason)

    def _timed_out(self) -> None:
        self._close_timer = None
        self._debug("closing handshake timed out: dropping the socket")
        self.abort()

    def _debug(self, msg: str, *args: Any) -> None:
        """A debug record about this socket (see :func:`~wyre.transport.socket_debug`)."""
        socket_debug(self._receiver, self._options.logger, msg, *args)

    def _lose(self, code: int, reason: str) -> None:
        """The socket is gone: tell the receiver, exactly once."""
        if self._reported:
            return
        self._reported = self._dropping = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        writer = self._writer
        if writer is not None and not writer.done() and writer is not asyncio.current_task():
            writer.cancel()
        self._wake_drainers(ConnectionError("socket closed"))
        if not self._lost.done():
            self._lost.set_result(None)
        receiver = self._receiver
        if receiver is not None:
            receiver.connection_lost(code, reason)


async def _resolved(value: Any) -> Any:
    return value

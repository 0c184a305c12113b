"""Where a server's connections meet: groups, broadcast, and peers on any node.

A :class:`Hub` belongs to each :class:`~wyre.Server`. Alone it keeps the
groups of that process's connections. With a backplane
(:mod:`wyre.backplane`, e.g. Redis) the servers sharing it form a cluster,
each one a **node**: a broadcast reaches every node's members, and
:class:`~wyre.Peer` reaches a connection on any node, request/reply
included. The hub holds the rules of that (routing, answers, failures);
the backplane only carries envelopes (:mod:`wyre.backplane.envelope`) and
keeps the shared records (which node holds which connection and group).

A request to a connection on another node, step by step::

    node A: peer.request(msg)       locate(id) -> node B; publish REQUEST to B
    node B: conn.request(msg)       a real request to its client;
                                    each PARTIAL, then REPLY / ERROR / FAILED, published to A
    node A: the same wyre.Request   settled as if the connection were local

A request always ends: in an answer, its timeout, ``ConnectionClosed``
(the connection or its node went away), ``NoSuchConnection``, or
``BackplaneError`` when the backplane is lost meanwhile, by this node or by
node B (B tells the caller once it is back), or when nobody listens on B's
channel (B died and is not reaped yet, or is reconnecting).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .backplane.envelope import Envelope, EnvelopeError, Kind, decode, encode
from .context import Context
from .exceptions import (
    BackplaneError,
    CodecError,
    ConnectionClosed,
    LimitExceeded,
    NoSuchConnection,
    RequestError,
    RequestTimeout,
    WyreError,
)
from .protocol import Codec, Direction
from .protocol.events import AnswerReceived
from .protocol.pending import Pending, new_key
from .request import Delivery, Request

if TYPE_CHECKING:
    from .backplane.base import Backplane
    from .connection import Connection
    from .peer import Peer
    from .request import Callback
    from .server import Server

__all__ = ["Hub"]

MAX_GROUP_NAME = 256
"""Longest group name, in characters."""

_UNSET: Any = object()


@dataclass(slots=True)
class _Call:
    """An operation this node sent to another and waits on."""

    delivery: Delivery | None  # a request or an acked send; None for close()
    peer: Peer
    node: str | None = None  # where it went, once located
    timer: asyncio.TimerHandle | None = None
    done: asyncio.Future[None] | None = None  # close() and acked sends without a Delivery

    def fail(self, error: BaseException) -> None:
        """End the call with ``error``, for whoever waits on it."""
        if self.delivery is not None:
            self.delivery._fail(error)
        elif self.done is not None and not self.done.done():
            self.done.set_exception(error)

    def succeed(self) -> None:
        """End a call that needs no answer but its DONE (a send, a close)."""
        if self.delivery is not None:
            self.delivery._resolve(None)
        elif self.done is not None and not self.done.done():
            self.done.set_result(None)


class Hub:
    """Groups, broadcast and peers of one server, across a cluster when there is a backplane.

    Also the :class:`~wyre.request.Owner` of requests this node sends to
    connections on other nodes.

    Attributes:
        node_id: unique per running server (a fresh one each time it starts).
        backplane: the :class:`~wyre.backplane.Backplane`, or None (one process).
    """

    def __init__(self, server: Server, backplane: Backplane | None) -> None:
        self.server = server
        self.backplane = backplane
        self.node_id = uuid.uuid4().hex
        self._groups: dict[str, dict[str, Connection]] = {}
        self._calls: dict[str, _Call] = {}  # this node waits on these, by call id
        self._serving: dict[tuple[str, str], asyncio.Task[None]] = {}  # (caller node, call id)
        self._interrupted: set[tuple[str, str]] = set()  # calls dropped in an outage, by key
        self._log = server.reporter.log
        self.started = False
        self.workers = 1
        """How many processes serve this server's port (``wyre serve --workers``).
        Above 1 without a backplane, cluster-wide calls raise instead of
        quietly reaching one process's connections."""

    # -- the Owner of remote requests --------------------------------------------

    @property
    def endpoint(self) -> Server:
        return self.server

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _abandon(self, pending: Pending) -> None:
        """The application gave up on a remote request: tell the node that runs it."""
        call = self._calls.pop(pending.key, None)
        if call is not None:
            self._end(call)
            if call.node is not None:
                self._notify(call.node, Kind.CANCEL, call=pending.key)

    def _hold_partials(self, on: bool) -> None:
        """Partials from another node are not held back: pub/sub has no flow control."""

    # -- life ----------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster (a fresh node id); no-op without a backplane.

        Raises:
            BackplaneError: the backplane cannot be reached.
        """
        if self.started:
            return
        self.node_id = uuid.uuid4().hex
        if self.backplane is not None:
            await self.backplane.start(self)
        self.started = True

    async def stop(self) -> None:
        """Leave the cluster: what waits on other nodes fails, this node's records go."""
        if not self.started:
            return
        self.started = False
        for call_id in list(self._calls):
            self._fail(call_id, ConnectionClosed(1001, "the server is shutting down"))
        for task in list(self._serving.values()):
            task.cancel()
        self._interrupted.clear()  # this node id ends: its callers reap it
        if self.backplane is not None:
            await self.backplane.stop()

    # -- groups ----------------------------------------------------------------------

    async def join(self, connection: Connection, name: str) -> None:
        """Add ``connection`` to group ``name`` (idempotent)."""
        _check_group(name)
        if connection.closed:
            raise connection._closed_error()
        members = self._groups.setdefault(name, {})
        if connection.id in members:
            return
        members[connection.id] = connection
        connection._joined(name, True)
        if self.backplane is not None and self.started:
            await self.backplane.joined(name, connection.id)

    async def leave(self, connection: Connection, name: str) -> None:
        """Remove ``connection`` from group ``name`` (idempotent)."""
        _check_group(name)
        members = self._groups.get(name)
        if members is None or members.pop(connection.id, None) is None:
            return
        if not members:
            del self._groups[name]
        connection._joined(name, False)
        if self.backplane is not None and self.started:
            await self.backplane.left(name, connection.id)

    def opened(self, connection: Connection) -> None:
        """A connection opened on this node: announce it to the cluster."""
        if self.backplane is not None and self.started:
            self.backplane.opened(connection.id)

    def closed(self, connection: Connection) -> None:
        """A connection closed: its memberships end, and the cluster forgets it."""
        groups = connection.groups
        for name in groups:
            members = self._groups.get(name)
            if members is not None:
                members.pop(connection.id, None)
                if not members:
                    del self._groups[name]
        if self.backplane is not None and self.started:
            self.backplane.closed(connection.id, groups)

    def has_members(self, name: str) -> bool:
        """Whether a connection of this node is in group ``name`` (now, not when queued)."""
        return name in self._groups

    def snapshot(self) -> tuple[list[str], list[tuple[str, str]]]:
        """This node's connections and (group, connection) memberships, to re-announce."""
        memberships = [(g, c) for g, members in self._groups.items() for c in members]
        return list(self.server.connections), memberships

    # -- broadcast --------------------------------------------------------------------

    async def broadcast(self, message: Any, group: str | None, exclude: Any) -> int:
        """Send ``message`` to every connection of ``group`` (all when None), on every node.

        Returns how many local connections it was written to.
        """
        if group is not None:
            _check_group(group)
        self._check_alone("broadcast()")
        excluded = _ids(exclude)
        frame = self._encode(message)
        written = self.deliver(frame, group, excluded, message)
        if self.backplane is not None:
            extras: dict[str, Any] = {"group": group}
            if excluded:
                extras["exclude"] = sorted(excluded)
            payload = frame.encode() if isinstance(frame, str) else frame
            envelope = Envelope(Kind.BROADCAST, self.node_id, "-", "-", extras, payload)
            await self._publish(None, envelope)
        return written

    def deliver(
        self, frame: str | bytes, group: str | None, excluded: set[str], message: Any = _UNSET
    ) -> int:
        """Write a MESSAGE to this node's members of ``group`` (or all).

        ``frame`` is the message as the server's own codec encodes it (see
        :meth:`_encode`); ``message`` is the message itself when the caller
        has it, else it is decoded from ``frame`` if needed. A member whose
        connection agreed on another codec (MessagePack) gets the message
        encoded with that one: once per codec in use, not once per member.
        A codec that cannot encode it is reported, and its members skipped.
        """
        if group is None:
            targets: Iterable[Connection] = list(self.server.connections.values())
        else:
            targets = list(self._groups.get(group, {}).values())
        limit = 4 * self.server.options.write_limit
        # By codec (identity: connections share their endpoint's codec objects);
        # None for a codec that failed.
        frames: dict[int, str | bytes | None] = {id(self.server.envelope.codec): frame}
        written = 0
        for connection in targets:
            if connection.id in excluded:
                continue
            # A broadcast never waits for one slow member: one that is far behind
            # misses it (at most once), and one that stops reading is dropped.
            if connection.buffered_amount > limit:
                self._log.debug("broadcast skipped a congested connection", connection=connection)
                continue
            codec = connection.codec
            data = frames.get(id(codec), _UNSET)
            if data is _UNSET:
                if message is _UNSET:
                    message = self._decode(frame if isinstance(frame, bytes) else frame.encode())
                data = frames[id(codec)] = self._encode_for(codec, message)
            if data is None:
                continue
            try:
                connection.send_encoded(data)
            except ConnectionClosed:
                continue
            written += 1
        return written

    def _encode_for(self, codec: Codec, message: Any) -> str | bytes | None:
        """``message`` encoded with ``codec`` for a broadcast; None (reported) if it cannot be."""
        try:
            return _encode(codec, message)
        except CodecError as exc:
            self.server.reporter.report(exc)
            return None

    # -- peers -------------------------------------------------------------------------

    def request(
        self,
        peer: Peer,
        message: Any,
        callback: Callback | None,
        timeout: float | None,
    ) -> Request:
        """A request to a connection on another node (see the module docstring)."""
        request = Request(self, callback)
        if self.backplane is None:  # one process: it would be in server.connections
            try:
                self._check_alone("peer()")
            except BackplaneError as exc:
                request._fail(exc)
            else:
                request._fail(NoSuchConnection(peer.id))
            return request
        call_id = request.key = new_key()
        request.type = self.server.envelope.get_type(message) if isinstance(message, dict) else None
        try:
            payload = self._payload(message)
        except Exception as exc:
            request._fail(exc)
            return request
        call = self._calls[call_id] = _Call(request, peer)
        if timeout is not None:
            request.timeout = timeout
            call.timer = self._loop.call_later(timeout, self._timed_out, call_id)
        extras = {"timeout": timeout}
        self.server.spawn(self._route(call_id, peer.id, Kind.REQUEST, payload, extras))
        return request

    async def send(self, peer: Peer, message: Any, ack: bool, within: float | None) -> None:
        """A message to a connection on another node; with ``ack``, wait for its client's ACK."""
        payload = self._payload(message)
        if not ack:
            node = await self._locate(peer.id)
            await self._publish(node, Envelope(Kind.SEND, self.node_id, peer.id, "-", {}, payload))
            return
        await self._wait(peer, Kind.SEND, payload, {"ack": True, "timeout": within}, within)

    async def close(self, peer: Peer, code: int, reason: str, within: float | None) -> None:
        """Close a connection on another node; returns once it is closed there."""
        extras = {"code": code, "reason": reason}
        await self._wait(peer, Kind.CLOSE, b"", extras, within)

    async def presence(self, group: str | None) -> dict[str, str]:
        """``{connection id: node id}`` of every connection (of ``group``), cluster-wide."""
        if group is not None:
            _check_group(group)
        self._check_alone("presence()")
        if self.backplane is None:
            ids = self.server.connections if group is None else self._groups.get(group, {})
            return dict.fromkeys(ids, self.node_id)
        return await self.backplane.presence(group)

    async def nodes(self) -> list[str]:
        """The ids of the live nodes (this one alone without a backplane)."""
        self._check_alone("nodes()")
        if self.backplane is None:
            return [self.node_id]
        return await self.backplane.nodes()

    # -- from the backplane -----------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """An envelope arrived on this node's channel or the broadcast channel."""
        try:
            envelope = decode(data)
        except EnvelopeError as exc:
            self.server.reporter.report(WyreError(f"unreadable backplane envelope: {exc}"))
            return
        kind = envelope.kind
        try:
            if kind is Kind.BROADCAST:
                if envelope.source != self.node_id:
                    extras = envelope.extras
                    self.deliver(
                        envelope.payload, extras.get("group"), set(extras.get("exclude", ()))
                    )
            elif kind in _ANSWERS:
                self._answer(envelope)
            elif kind is Kind.REQUEST or kind is Kind.SEND or kind is Kind.CLOSE:
                self._serve(envelope)
            elif kind is Kind.CANCEL:
                task = self._serving.pop((envelope.source, envelope.call), None)
                if task is not None:
                    task.cancel()
        except Exception as exc:  # a bad envelope must not stop the others
            self.server.reporter.report(
                WyreError(f"backplane envelope {kind.value} could not be handled: {exc!r}")
            )

    def nodes_lost(self, nodes: set[str]) -> None:
        """Nodes died: what waits on them fails now, what they asked of us stops."""
        for call_id, call in list(self._calls.items()):
            if call.node in nodes:
                self._fail(
                    call_id, ConnectionClosed(1006, "the node holding the connection is gone")
                )
        for (source, call_id), task in list(self._serving.items()):
            if source in nodes:
                task.cancel()
                self._serving.pop((source, call_id), None)

    def backplane_lost(self, error: BackplaneError) -> None:
        """The backplane is unreachable: nothing in flight across it can end normally."""
        for call_id in list(self._calls):
            self._fail(call_id, error)
        for key, task in list(self._serving.items()):
            task.cancel()
            self._interrupted.add(key)
        self._serving.clear()

    def backplane_back(self) -> None:
        """The backplane is back: the nodes whose calls this one dropped meanwhile hear of it.

        Without this, a caller whose own link stayed up would wait for its
        timeout (or forever) on a call that nobody runs any more.
        """
        interrupted, self._interrupted = self._interrupted, set()
        for source, call in interrupted:
            self._notify(source, Kind.FAILED, call=call, extras={"why": "backplane"})

    def waiting_on(self) -> set[str]:
        """The nodes this one waits on (the backplane watches that they stay alive)."""
        return {call.node for call in self._calls.values() if call.node is not None}

    # -- inside -----------------------------------------------------------------------

    def _check_alone(self, what: str) -> None:
        """Refuse a cluster-wide call that would quietly cover one process of several."""
        if self.backplane is None and self.workers > 1:
            raise BackplaneError(
                f"{what} needs a backplane: {self.workers} worker processes share this port, "
                "and without one it would reach only this process's connections "
                "(wyre serve --backplane redis://...)"
            )

    # What crosses the backplane is encoded with the server's own codec, the one
    # of its JSON connections (``server.envelope``: JSON, or what use("codec")
    # set), whatever codec each connection agreed on: every node must read what
    # any other writes, and each node re-encodes for its MessagePack members.
    # Values only MessagePack carries (bytes) cannot cross it.

    def _encode(self, message: Any) -> str | bytes:
        """A MESSAGE frame as the server's own codec makes it (what crosses the backplane).

        Raises:
            TypeError: not a dict (with the default envelope).
            CodecError: the codec (and its fallback) cannot encode it.
        """
        envelope = self.server.envelope
        if envelope.requires_dict and message.__class__ is not dict:
            raise TypeError(f"a message must be a dict, not {type(message).__name__}")
        return _encode(envelope.codec, message)

    def _payload(self, message: Any) -> bytes:
        frame = self._encode(message)
        return frame.encode() if isinstance(frame, str) else frame

    def _decode(self, payload: bytes) -> Any:
        """A message from the backplane, decoded with the server's own codec."""
        return self.server.envelope.codec.decode(payload.decode())

    async def _locate(self, connection_id: str) -> str:
        assert self.backplane is not None
        node = await self.backplane.locate(connection_id)
        if node is None:
            raise NoSuchConnection(connection_id)
        return node

    async def _publish(self, node: str | None, envelope: Envelope) -> int:
        """Publish ``envelope``; how many nodes got it. Envelopes keep the order of the calls."""
        assert self.backplane is not None
        data = encode(envelope, self.backplane.max_envelope_size)
        return await self.backplane.publish(node, data)

    def _notify(self, node: str, kind: Kind, *, call: str, extras: dict[str, Any] | None = None,
                payload: bytes = b"") -> None:  # fmt: skip
        """Send an answer (or a cancellation) without waiting; it keeps its place in line."""
        envelope = Envelope(kind, self.node_id, "-", call, extras or {}, payload)
        self.server.spawn(self._quietly(node, envelope))

    async def _quietly(self, node: str, envelope: Envelope) -> None:
        """Publish an answer; one too big goes as a FAILED ``limit``, so the caller learns
        of it now rather than at its timeout (both in this task's first step: in order)."""
        try:
            try:
                await self._publish(node, envelope)
            except LimitExceeded as exc:
                extras = {"why": "limit", "text": str(exc)}
                await self._publish(
                    node, Envelope(Kind.FAILED, self.node_id, "-", envelope.call, extras)
                )
        except BackplaneError as exc:
            if envelope.kind in _FINAL:  # the caller still waits: tell it once the link is back
                self._interrupted.add((node, envelope.call))
            self._log.log(logging.DEBUG, "could not answer node %s: %s", node, exc)
        except LimitExceeded as exc:
            self._log.log(logging.DEBUG, "could not answer node %s: %s", node, exc)

    async def _route(
        self, call_id: str, target: str, kind: Kind, payload: bytes, extras: dict[str, Any]
    ) -> None:
        """Find the node of ``target`` and send it the call (the caller waits on ``_calls``)."""
        try:
            node = await self._locate(target)
            call = self._calls.get(call_id)
            if call is None:
                return  # cancelled or timed out meanwhile
            call.node = node
            envelope = Envelope(kind, self.node_id, target, call_id, extras, payload)
            if not await self._publish(node, envelope):
                raise BackplaneError(f"node {node} does not listen (it died, or is reconnecting)")
        except (WyreError, OSError) as exc:
            self._fail(call_id, exc)

    async def _wait(
        self, peer: Peer, kind: Kind, payload: bytes, extras: dict[str, Any], within: float | None
    ) -> None:
        """Send a call that ends in DONE or FAILED, and wait for it (bounded by ``within``)."""
        call_id = new_key()
        done: asyncio.Future[None] = self._loop.create_future()
        call = self._calls[call_id] = _Call(None, peer, done=done)
        if within is not None:
            call.timer = self._loop.call_later(within, self._timed_out, call_id)
        await self._route(call_id, peer.id, kind, payload, extras)
        try:
            await done
        except asyncio.CancelledError:
            self._calls.pop(call_id, None)
            self._end(call)
            raise

    def _timed_out(self, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return
        call.timer = None
        self.server.counters.timed_out += 1
        if call.delivery is not None:
            call.delivery._timed_out()
        else:
            call.fail(RequestTimeout(f"no answer from {call.peer.id} in time"))
        self._calls.pop(call_id, None)
        if call.node is not None:
            self._notify(call.node, Kind.CANCEL, call=call_id)

    def _fail(self, call_id: str, error: BaseException) -> None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        self._end(call)
        call.fail(error)

    def _end(self, call: _Call) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None

    def _answer(self, envelope: Envelope) -> None:
        """An answer to one of this node's calls."""
        kind = envelope.kind
        call = self._calls.get(envelope.call)
        if call is None:
            return  # given up on meanwhile
        delivery = call.delivery
        if kind is Kind.PARTIAL:
            if isinstance(delivery, Request):
                delivery._partial(self._context(call, Direction.PARTIAL, envelope.payload))
            return
        self._calls.pop(envelope.call, None)
        self._end(call)
        if kind is Kind.FAILED:
            call.fail(_failure(envelope.extras, call.peer.id))
        elif kind is Kind.DONE:
            call.succeed()
        elif isinstance(delivery, Request):
            if kind is Kind.REPLY:
                delivery._resolve(self._context(call, Direction.REPLY, envelope.payload))
            else:
                delivery._fail(RequestError(self._context(call, Direction.ERROR, envelope.payload)))

    def _context(self, call: _Call, direction: Direction, payload: bytes) -> Context:
        """An answer from another node, as the Context a local one would be.

        Its ``connection`` is the :class:`~wyre.Peer` (same ``id``, ``send``,
        ``request`` and ``close``), since the connection lives elsewhere.
        """
        message = self._decode(payload)
        envelope = self.server.envelope
        key = envelope.get_key(message) if isinstance(message, dict) else None
        type_ = envelope.get_type(message) if isinstance(message, dict) else None
        assert call.delivery is not None
        event = AnswerReceived(call.delivery, direction, key, type_, message)
        return Context(event, call.peer)  # type: ignore[arg-type]

    def _serve(self, envelope: Envelope) -> None:
        """Another node asks something of a connection on this one."""
        connection = self.server.connections.get(envelope.target)
        source, call = envelope.source, envelope.call
        if connection is None:
            if call != "-":
                self._notify(source, Kind.FAILED, call=call, extras={"why": "nosuch"})
            return
        if envelope.kind is Kind.SEND and call == "-":
            payload: str | bytes | None = envelope.payload
            if connection.codec is not self.server.envelope.codec:  # it speaks MessagePack
                payload = self._encode_for(connection.codec, self._decode(envelope.payload))
            if payload is not None:
                with contextlib.suppress(ConnectionClosed):
                    connection.send_encoded(payload)
            return
        key = (source, call)
        task = self.server.spawn(self._run(connection, envelope))
        self._serving[key] = task  # type: ignore[assignment]
        task.add_done_callback(lambda _: self._serving.pop(key, None))

    async def _run(self, connection: Connection, envelope: Envelope) -> None:
        """Run another node's call on ``connection``; publish each answer back."""
        source, call, kind, extras = envelope.source, envelope.call, envelope.kind, envelope.extras
        timeout = extras.get("timeout")
        try:
            if kind is Kind.CLOSE:
                await connection.close(int(extras.get("code", 1000)), str(extras.get("reason", "")))
                self._notify(source, Kind.DONE, call=call)
                return
            message = self._decode(envelope.payload)
            if kind is Kind.SEND:
                await connection.send(message, ack=True, timeout=timeout)
                self._notify(source, Kind.DONE, call=call)
                return
            request = connection.request(message, timeout=timeout)
            async for partial in request.partials():
                self._notify(
                    source, Kind.PARTIAL, call=call, payload=self._payload(partial.message)
                )
            reply = await request
            self._notify(source, Kind.REPLY, call=call, payload=self._payload(reply.message))
        except RequestError as exc:
            self._notify(source, Kind.ERROR, call=call, payload=self._payload(exc.context.message))
        except RequestTimeout as exc:
            self._notify(
                source, Kind.FAILED, call=call, extras={"why": "timeout", "text": str(exc)}
            )
        except ConnectionClosed as exc:
            extras = {"why": "closed", "code": exc.code, "reason": exc.reason}
            self._notify(source, Kind.FAILED, call=call, extras=extras)
        except (WyreError, TypeError, ValueError) as exc:
            why = "limit" if isinstance(exc, LimitExceeded) else "error"
            self._notify(source, Kind.FAILED, call=call, extras={"why": why, "text": str(exc)})


def _encode(codec: Codec, message: Any) -> str | bytes:
    """``message`` encoded with ``codec``, or its fallback; CodecError when neither can."""
    try:
        return codec.encode(message)
    except Exception as exc:
        error: Exception = exc
    if codec.fallback is not None:
        try:
            return codec.fallback(message)
        except Exception as exc:
            error = exc
    raise CodecError(f"cannot encode message ({error})", frame=message) from error


_ANSWERS = frozenset({Kind.PARTIAL, Kind.REPLY, Kind.ERROR, Kind.DONE, Kind.FAILED})
_FINAL = _ANSWERS - {Kind.PARTIAL}


def _failure(extras: dict[str, Any], connection_id: str) -> WyreError:
    """The exception for a FAILED answer, as the call would have raised locally."""
    why = extras.get("why")
    if why == "nosuch":
        return NoSuchConnection(connection_id)
    if why == "closed":
        return ConnectionClosed(int(extras.get("code", 1006)), str(extras.get("reason", "")))
    if why == "timeout":
        return RequestTimeout(str(extras.get("text", "no answer in time")))
    if why == "limit":
        return LimitExceeded(str(extras.get("text", "")))
    if why == "backplane":
        return BackplaneError("the node holding the connection lost the backplane meanwhile")
    return WyreError(str(extras.get("text", "the call failed on the other node")))


def _check_group(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a group name is a non-empty str, not {name!r}")
    if len(name) > MAX_GROUP_NAME:
        raise ValueError(f"a group name is at most {MAX_GROUP_NAME} characters")


def _ids(exclude: Any) -> set[str]:
    """The connection ids in ``exclude``: a Connection, an id, or an iterable of them."""
    if exclude is None:
        return set()
    if isinstance(exclude, str):
        return {exclude}
    if hasattr(exclude, "id") and not isinstance(exclude, Iterable):
        return {exclude.id}
    return {item if isinstance(item, str) else item.id for item in exclude}

"""Two sessions wired together, driven at random and checked against a simple model.

A is the requester, B the responder. What A writes is queued for B and what
B writes is queued for A; the queues are pumped explicitly, one frame at a
time, so answers, CANCELs, expiries and junk interleave in every order. The
model says what each frame must turn into, and at the end every request A
made must have ended exactly once: by a REPLY or ERROR, an ACK, being
abandoned, expiring, or the connection closing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from wyre.exceptions import LimitExceeded, LocalProtocolError
from wyre.protocol.codecs import json_codec, orjson_codec
from wyre.protocol.direction import Direction
from wyre.protocol.envelope import Envelope
from wyre.protocol.events import (
    ANSWERED,
    CANCELLED,
    OPEN,
    AckReceived,
    AnswerDropped,
    AnswerReceived,
    CancelReceived,
    FrameRejected,
    IncomingMessage,
    IncomingRequest,
)
from wyre.protocol.pending import Pending
from wyre.protocol.session import Session

ANSWER_DIRECTIONS = {"REPLY", "ERROR", "PARTIAL", "ACK", "CANCEL"}
"""What a frame is when it answers something: nothing may ever be written back."""

JUNK_KINDS = [
    "undecodable",
    "not-object",
    "nan",
    "unknown-keyed",
    "unknown-unkeyed",
    "request-no-key",
    "reply-unknown",
    "partial-unknown",
    "error-unknown",
    "ack-unknown",
    "cancel-unknown",
]

Queue = list[tuple[str | bytes, str | None]]
"""Frames in flight: (data, junk kind or None for a frame a session wrote)."""


@dataclass
class Waiting:
    """One of A's pending records, as the model sees it."""

    pending: Pending
    kind: str  # "request" or "ack"
    deadline: float | None


def _direction(message: Any) -> str | None:
    """The upper-cased direction of a decoded frame, if it has one."""
    if isinstance(message, dict) and isinstance(message.get("direction"), str):
        return str(message["direction"]).upper()
    return None


def _decoded(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


class SessionPair(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.a: Session | None = None

    # -- set-up -----------------------------------------------------------------

    @initialize(
        extensions=st.booleans(),
        codec=st.sampled_from(["json", "orjson"]),
        max_pending=st.integers(1, 6),
    )
    def start(self, extensions: bool, codec: str, max_pending: int) -> None:
        self.envelope = Envelope(codec=json_codec() if codec == "json" else orjson_codec())
        self.extensions = extensions
        self.max_pending = max_pending
        self.now = 0.0
        self.counter = 0
        self.records: dict[str, Pending] = {}  # every key A ever sent with
        self.ended: dict[str, str] = {}  # key -> how it ended (once)
        self.waiting: dict[str, Waiting] = {}  # what A still waits for
        self._connect()

    def _connect(self) -> None:
        """A fresh connection: two sessions, empty queues, nothing in flight."""
        self.to_a: Queue = []
        self.to_b: Queue = []
        self.a = Session(
            self.envelope,
            extensions=self.extensions,
            write=lambda data, binary, answering: self.to_b.append((data, None)),
            max_pending=self.max_pending,
        )
        self.b = Session(
            self.envelope,
            extensions=self.extensions,
            write=lambda data, binary, answering: self.to_a.append((data, None)),
        )
        # A's side
        self.abandoned: set[str] = set()  # requests A gave up on
        self.received: dict[str, int] = {}  # answers A got per key (incl. dropped)
        # B's side
        self.incoming: dict[str, IncomingRequest] = {}  # every request B received
        self.state: dict[str, int] = {}  # the model's answer state of each
        self.sent: dict[str, list[str]] = {}  # B's answers per key, in order

    def _fresh(self) -> int:
        self.counter += 1
        return self.counter

    def _end(self, key: str, how: str) -> None:
        assert key in self.waiting, f"{key} ended ({how}) but was not waiting"
        assert key not in self.ended, f"{key} ended twice: {self.ended[key]}, then {how}"
        entry = self.waiting.pop(key)
        self.ended[key] = how
        if how in ("abandoned", "expired") and entry.kind == "request":
            self.abandoned.add(key)

    def _waiting(self, kind: str) -> set[str]:
        return {key for key, entry in self.waiting.items() if entry.kind == kind}

    # -- A: requests, acknowledged sends, abandon, expire ----------------------

    @rule(timeout=st.none() | st.integers(1, 30), own_key=st.booleans())
    def a_requests(self, timeout: int | None, own_key: bool) -> None:
        assert self.a is not None
        n = self._fresh()
        message: dict[str, Any] = {"type": "job", "n": n}
        if own_key:
            message["key"] = f"own-{n}"
        before = dict(message)
        pending = Pending()
        pending.deadline = None if timeout is None else self.now + timeout
        writes = len(self.to_b)
        if len(self._waiting("request")) >= self.max_pending:
            with pytest.raises(LimitExceeded):
                self.a.request(message, pending)
            assert len(self.to_b) == writes
            return
        self.a.request(message, pending)
        assert message == before
        assert len(self.to_b) == writes + 1
        sent = _decoded(self.to_b[-1][0])
        assert sent == {**before, "key": pending.key, "direction": "REQUEST"}
        assert pending.key not in self.records
        if own_key:
            assert pending.key == f"own-{n}"
        self.records[pending.key] = pending
        self.waiting[pending.key] = Waiting(pending, "request", pending.deadline)

    @rule(timeout=st.none() | st.integers(1, 30))
    def a_sends_acked(self, timeout: int | None) -> None:
        assert self.a is not None
        pending = Pending()
        pending.deadline = None if timeout is None else self.now + timeout
        message = {"type": "note", "n": self._fresh()}
        writes = len(self.to_b)
        if not self.extensions:
            with pytest.raises(LocalProtocolError):
                self.a.send_acked(message, pending)
            assert len(self.to_b) == writes
            return
        self.a.send_acked(message, pending)
        assert len(self.to_b) == writes + 1
        assert _decoded(self.to_b[-1][0]) == {**message, "key": pending.key}
        assert pending.key not in self.records
        self.records[pending.key] = pending
        self.waiting[pending.key] = Waiting(pending, "ack", pending.deadline)

    @precondition(lambda self: bool(self.waiting))
    @rule(data=st.data())
    def a_abandons(self, data: st.DataObject) -> None:
        assert self.a is not None
        key = data.draw(st.sampled_from(sorted(self.waiting)))
        entry = self.waiting[key]
        writes = len(self.to_b)
        assert self.a.abandon(entry.pending) is True
        if self.extensions and entry.kind == "request":
            assert len(self.to_b) == writes + 1
            assert _decoded(self.to_b[-1][0]) == {"key": key, "direction": "CANCEL"}
        else:
            assert len(self.to_b) == writes
        self._end(key, "abandoned")

    @precondition(lambda self: bool(self.ended))
    @rule(data=st.data())
    def a_abandons_what_has_ended(self, data: st.DataObject) -> None:
        assert self.a is not None
        key = data.draw(st.sampled_from(sorted(self.ended)))
        writes = len(self.to_b)
        assert self.a.abandon(self.records[key]) is False
        assert len(self.to_b) == writes

    @rule(step=st.integers(0, 5))
    def time_passes(self, step: int) -> None:
        assert self.a is not None
        self.now += step
        writes = len(self.to_b)
        expired, earliest = self.a.expire(self.now)
        due = {
            key
            for key, entry in self.waiting.items()
            if entry.deadline is not None and entry.deadline <= self.now
        }
        keys = [pending.key for pending in expired]
        assert sorted(keys) == sorted(due)
        requests = sorted(key for key in keys if self.waiting[key].kind == "request")
        for key in keys:
            assert self.records[key] is self.waiting[key].pending
            self._end(key, "expired")
        later = [e.deadline for e in self.waiting.values() if e.deadline is not None]
        assert earliest == (min(later) if later else None)
        cancels = [_decoded(data) for data, _ in self.to_b[writes:]]
        assert sorted(m["key"] for m in cancels) == (requests if self.extensions else [])
        assert all(m["direction"] == "CANCEL" for m in cancels)

    # -- B: answers, close ------------------------------------------------------

    @precondition(lambda self: bool(self.incoming))
    @rule(data=st.data(), how=st.sampled_from(["PARTIAL", "REPLY", "ERROR", "answer_error"]))
    def b_answers(self, data: st.DataObject, how: str) -> None:
        # mostly a request still open; sometimes one answered or cancelled already
        open_keys = sorted(key for key, state in self.state.items() if state == OPEN)
        if open_keys and data.draw(st.integers(0, 3)) > 0:
            key = data.draw(st.sampled_from(open_keys))
        else:
            key = data.draw(st.sampled_from(sorted(self.incoming)))
        request = self.incoming[key]
        state = self.state[key]
        assert request.state == state
        writes = len(self.to_a)
        seq = len(self.sent[key])
        if how == "answer_error":
            sent = self.b.answer_error(request, "Failed", f"#{seq}")
            assert sent is (state == OPEN)
            direction = "ERROR"
        else:
            direction = how
            if state == ANSWERED:
                with pytest.raises(LocalProtocolError):
                    self.b.answer(request, Direction(how), {"seq": seq})
                sent = False
            else:
                sent = self.b.answer(request, Direction(how), {"seq": seq})
                assert sent is (state == OPEN)
        if not sent:  # answered already, or cancelled: nothing goes out
            assert len(self.to_a) == writes
            return
        assert len(self.to_a) == writes + 1
        frame = _decoded(self.to_a[-1][0])
        assert (frame["key"], frame["direction"]) == (key, direction)
        self.sent[key].append(direction)
        if direction != "PARTIAL":
            self.state[key] = ANSWERED
        assert request.state == self.state[key]

    @precondition(lambda self: bool(self.waiting or self.incoming))
    @rule()
    def connection_closes(self) -> None:
        """The connection goes: B's handlers are cancelled, A fails all it waits for.

        Then a new connection opens, so that the run goes on.
        """
        assert self.a is not None
        assert self.b.close() == []  # B never waits for anything
        cancelled = []
        for key, request in self.incoming.items():
            if self.state[key] == OPEN:
                self.state[key] = CANCELLED
                cancelled.append(request)
            assert request.state == self.state[key]
        left = self.a.close()
        assert sorted(p.key for p in left) == sorted(self.waiting)
        assert len({id(p) for p in left}) == len(left)
        for pending in left:
            assert self.waiting[pending.key].pending is pending
            self._end(pending.key, "closed")
        self.to_a.clear()
        self.to_b.clear()
        # the handlers' answers are dropped now; nothing is left to expire
        for request in cancelled:
            assert self.b.answer(request, Direction.REPLY, {}) is False
            assert self.b.answer_error(request, "Late", "late") is False
        assert self.a.expire(self.now + 1e6) == ([], None)
        assert self.a.close() == self.b.close() == []
        assert not (self.to_a or self.to_b)
        self._connect()

    # -- junk ---------------------------------------------------------------------

    @rule(kind=st.sampled_from(JUNK_KINDS), towards_a=st.booleans())
    def junk(self, kind: str, towards_a: bool) -> None:
        key = f"junk-{self._fresh()}"
        data: str | bytes = {
            "undecodable": b"\xff\xfe\x00 not json",
            "not-object": '["REQUEST", "x"]',
            "nan": '{"direction":"REQUEST","x":NaN,"key":"' + key + '"}',
            "unknown-keyed": json.dumps({"key": key, "direction": "RESUEST"}),
            "unknown-unkeyed": json.dumps({"direction": "SIDEWAYS", "type": "x"}),
            "request-no-key": json.dumps({"direction": "REQUEST", "type": "x"}),
            "reply-unknown": json.dumps({"key": key, "direction": "REPLY"}),
            "partial-unknown": json.dumps({"key": key, "direction": "partial"}),
            "error-unknown": json.dumps({"key": key, "direction": "ERROR"}),
            "ack-unknown": json.dumps({"key": key, "direction": "ACK"}),
            "cancel-unknown": json.dumps({"key": key, "direction": "CANCEL"}),
        }[kind]
        (self.to_a if towards_a else self.to_b).append((data, kind))

    # -- delivery -------------------------------------------------------------------

    @precondition(lambda self: bool(self.to_b))
    @rule(count=st.integers(1, 3))
    def deliver_to_b(self, count: int) -> None:
        for _ in range(min(count, len(self.to_b))):
            self._deliver_to_b()

    @precondition(lambda self: bool(self.to_a))
    @rule(count=st.integers(1, 3))
    def deliver_to_a(self, count: int) -> None:
        for _ in range(min(count, len(self.to_a))):
            self._deliver_to_a()

    @precondition(lambda self: bool(self.to_a or self.to_b))
    @rule()
    def deliver_everything(self) -> None:
        self._flush()

    def _flush(self) -> None:
        while self.to_a or self.to_b:
            if self.to_b:
                self._deliver_to_b()
            if self.to_a:
                self._deliver_to_a()

    def _junk_expected(self, session: Session, kind: str, out: Queue, data: Any) -> None:
        """A junk frame: rejected (or ignored), with an ERROR back only when keyed."""
        writes = len(out)
        event = session.receive(data)
        if kind in ("ack-unknown", "cancel-unknown") and self.extensions:
            assert event is None
            assert len(out) == writes
            return
        assert isinstance(event, FrameRejected), (kind, event)
        if kind == "unknown-keyed":
            assert event.replied is True
            assert len(out) == writes + 1
            sent = _decoded(out[-1][0])
            assert (sent["key"], sent["direction"]) == (json.loads(data)["key"], "ERROR")
        else:
            assert event.replied is False
            assert len(out) == writes

    def _deliver_to_b(self) -> None:
        data, kind = self.to_b.pop(0)
        if kind is not None:
            self._junk_expected(self.b, kind, self.to_a, data)
            return
        message = _decoded(data)
        direction = _direction(message)
        key = message.get("key")
        writes = len(self.to_a)
        event = self.b.receive(data)
        if direction == "REQUEST":
            assert isinstance(event, IncomingRequest)
            assert key not in self.incoming
            assert (event.key, event.state, event.message) == (key, OPEN, message)
            self.incoming[key] = event
            self.state[key] = OPEN
            self.sent[key] = []
        elif direction is None:  # an acknowledged send
            assert isinstance(event, IncomingMessage)
            assert event.key == key
            assert self.extensions
            assert len(self.to_a) == writes + 1
            assert _decoded(self.to_a[-1][0]) == {"key": key, "direction": "ACK"}
            return
        elif direction == "CANCEL":
            assert self.extensions
            if self.state.get(key) == OPEN:
                assert isinstance(event, CancelReceived)
                assert event.request is self.incoming[key]
                self.state[key] = CANCELLED
                assert event.request.state == CANCELLED
            else:
                assert event is None
        elif direction == "ERROR":  # A's answer to junk that B received
            assert key.startswith("junk-")
            assert isinstance(event, FrameRejected)
            assert event.replied is False
        else:
            raise AssertionError(f"A wrote an unexpected frame: {message}")
        assert len(self.to_a) == writes  # nothing written back

    def _deliver_to_a(self) -> None:
        assert self.a is not None
        data, kind = self.to_a.pop(0)
        if kind is not None:
            self._junk_expected(self.a, kind, self.to_b, data)
            return
        message = _decoded(data)
        direction = _direction(message)
        assert direction in ANSWER_DIRECTIONS
        key = message["key"]
        writes = len(self.to_b)
        event = self.a.receive(data)
        assert len(self.to_b) == writes, "A wrote a frame in answer to an answer"
        if direction == "ACK":
            entry = self.waiting.get(key)
            if entry is not None and entry.kind == "ack":
                assert isinstance(event, AckReceived)
                assert event.pending is entry.pending
                self._end(key, "acked")
            else:  # a late ACK for a send A gave up on
                assert key in self.ended
                assert event is None
            return
        if key.startswith("junk-"):  # B's ERROR for junk A never sent a request for
            assert isinstance(event, FrameRejected)
            assert event.replied is False
            return
        # B's PARTIAL, REPLY or ERROR: in the order B sent them, never after the end
        index = self.received.get(key, 0)
        assert index < len(self.sent[key])
        assert direction == self.sent[key][index]
        if "seq" in message:
            assert message["seq"] == index
        else:
            assert message["message"] == f"#{index}"
        self.received[key] = index + 1
        if key in self.abandoned:
            assert isinstance(event, AnswerDropped)
            assert (event.direction, event.key) == (direction, key)
            return
        assert isinstance(event, AnswerReceived), (direction, key, event)
        entry = self.waiting[key]
        assert entry.kind == "request"
        assert event.pending is entry.pending
        assert (event.direction, event.key, event.message) == (direction, key, message)
        if direction != "PARTIAL":
            self._end(key, direction)

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def tables_match_the_model(self) -> None:
        if self.a is None:
            return
        assert set(self.a._requests) == self._waiting("request")
        assert set(self.a._acks) == self._waiting("ack")
        assert self.a.pending_requests == len(self._waiting("request"))
        open_keys = {key for key, state in self.state.items() if state == OPEN}
        assert set(self.b._incoming) == open_keys
        assert self.b.open_requests == len(open_keys)
        assert self.b.pending_requests == 0
        assert not set(self.waiting) & set(self.ended)

    def teardown(self) -> None:
        if self.a is None:
            return
        self._flush()
        self.connection_closes()
        # every request and acknowledged send ended exactly once
        assert set(self.ended) == set(self.records)
        assert not self.waiting


SessionPair.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestSessionPair = SessionPair.TestCase

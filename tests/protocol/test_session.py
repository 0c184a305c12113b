"""The Sans-I/O session, rule by rule: frames in, events and frames out.

No event loop and no socket: a :class:`Session` writes into a list
(:class:`~.helpers.Wire`) and its events are checked as they are returned.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import json
import math
import re
import uuid
from collections import OrderedDict
from typing import Any

import pytest

from wyre.exceptions import (
    CodecError,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
)
from wyre.protocol.codecs import Codec, json_codec, orjson_codec
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
from wyre.protocol.pending import ABANDONED_MEMORY, Pending
from wyre.protocol.session import BAD_FRAME_WINDOW, Session

from .helpers import frame, make

REQUEST = Direction.REQUEST
REPLY = Direction.REPLY
ERROR = Direction.ERROR
PARTIAL = Direction.PARTIAL
MESSAGE = Direction.MESSAGE
ACK = Direction.ACK
CANCEL = Direction.CANCEL
ANSWERS = [PARTIAL, REPLY, ERROR]
FINALS = [REPLY, ERROR]
CODECS = [pytest.param(json_codec, id="json"), pytest.param(orjson_codec, id="orjson")]
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

SHORT = 400
"""The most characters an error text about a peer's frame may have."""


def incoming(session: Session, key: str = "k", **fields: Any) -> IncomingRequest:
    """Receive a REQUEST with ``key``; it must be accepted."""
    event = session.receive(frame(key=key, direction="REQUEST", **fields))
    assert isinstance(event, IncomingRequest), event
    return event


def requested(session: Session, message: dict[str, Any] | None = None) -> Pending:
    """Send a REQUEST; the pending record it is tracked with."""
    pending = Pending()
    session.request({"type": "q"} if message is None else message, pending)
    return pending


def rejected(event: object) -> FrameRejected:
    assert isinstance(event, FrameRejected), event
    return event


# -- the answer state of an incoming request ----------------------------------


def test_a_new_request_is_open_and_nothing_is_written() -> None:
    session, wire = make()
    request = incoming(session, "k1", type="add", a=1)
    assert (request.key, request.type, request.state) == ("k1", "add", OPEN)
    assert request.message == {"key": "k1", "direction": "REQUEST", "type": "add", "a": 1}
    assert session.open_requests == 1
    assert len(wire) == 0


@pytest.mark.parametrize("final", FINALS)
def test_partials_keep_the_request_open_until_the_final_answer(final: Direction) -> None:
    session, wire = make()
    request = incoming(session, "k1")
    for i in range(3):
        assert session.answer(request, PARTIAL, {"i": i}) is True
        assert request.state == OPEN
        assert session.open_requests == 1
    assert session.answer(request, final, {"done": True}) is True
    assert request.state == ANSWERED
    assert session.open_requests == 0
    assert wire.take() == [
        {"i": 0, "key": "k1", "direction": "PARTIAL"},
        {"i": 1, "key": "k1", "direction": "PARTIAL"},
        {"i": 2, "key": "k1", "direction": "PARTIAL"},
        {"done": True, "key": "k1", "direction": final.value},
    ]


@pytest.mark.parametrize("final", FINALS)
def test_a_final_answer_without_partials(final: Direction) -> None:
    session, wire = make()
    request = incoming(session)
    assert session.answer(request, final, {"x": 1}) is True
    assert request.state == ANSWERED
    assert wire.take() == [{"x": 1, "key": "k", "direction": final.value}]


@pytest.mark.parametrize("second", ANSWERS)
@pytest.mark.parametrize("first", FINALS)
def test_a_second_answer_raises_and_writes_nothing(first: Direction, second: Direction) -> None:
    session, wire = make()
    request = incoming(session)
    session.answer(request, first, {})
    wire.take()
    with pytest.raises(LocalProtocolError, match="already answered"):
        session.answer(request, second, {"again": True})
    assert len(wire) == 0
    assert request.state == ANSWERED


def test_an_answer_of_none_carries_only_the_protocol_fields() -> None:
    session, wire = make()
    request = incoming(session)
    session.answer(request, REPLY, None)
    assert wire.take() == [{"key": "k", "direction": "REPLY"}]


@pytest.mark.parametrize("binary", [False, True])
def test_the_binary_flag_goes_to_write(binary: bool) -> None:
    session, wire = make()
    request = incoming(session)
    session.answer(request, REPLY, {}, binary)
    session.send({"m": 1}, binary)
    assert [b for _, b in wire.frames] == [binary, binary]


@pytest.mark.parametrize("partials", [0, 2])
def test_answers_after_cancel_are_dropped(partials: int) -> None:
    session, wire = make(extensions=True)
    request = incoming(session)
    for _ in range(partials):
        session.answer(request, PARTIAL, {})
    wire.take()
    event = session.receive(frame(key="k", direction="CANCEL"))
    assert isinstance(event, CancelReceived)
    assert event.request is request
    assert request.state == CANCELLED
    assert session.open_requests == 0
    for direction in ANSWERS:
        assert session.answer(request, direction, {"late": True}) is False
    assert session.answer_error(request, "Late", "too late") is False
    assert len(wire) == 0
    assert request.state == CANCELLED


def test_cancel_is_read_without_regard_to_case() -> None:
    session, _ = make(extensions=True)
    request = incoming(session)
    assert isinstance(session.receive(frame(key="k", direction="cancel")), CancelReceived)
    assert request.state == CANCELLED


def test_a_cancel_after_the_answer_is_ignored() -> None:
    session, wire = make(extensions=True)
    request = incoming(session)
    session.answer(request, REPLY, {})
    wire.take()
    assert session.receive(frame(key="k", direction="CANCEL")) is None
    assert request.state == ANSWERED
    assert len(wire) == 0


@pytest.mark.parametrize("extensions", [False, True])
def test_answers_after_close_are_dropped(extensions: bool) -> None:
    session, wire = make(extensions=extensions)
    first = incoming(session, "k1")
    second = incoming(session, "k2")
    session.answer(second, PARTIAL, {})
    wire.take()
    assert session.close() == []
    assert first.state == second.state == CANCELLED
    assert session.open_requests == 0
    for request in (first, second):
        for direction in ANSWERS:
            assert session.answer(request, direction, {}) is False
        assert session.answer_error(request, "X", "y") is False
    assert len(wire) == 0


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("direction", ANSWERS)
def test_an_answer_that_cannot_be_encoded_leaves_the_request_open(
    codec: Any, direction: Direction
) -> None:
    session, wire = make(codec=codec())
    request = incoming(session)
    with pytest.raises(CodecError):
        session.answer(request, direction, {"bad": {1, 2}})
    with pytest.raises(CodecError):
        session.answer(request, direction, {"bad": object()})
    assert len(wire) == 0
    assert request.state == OPEN
    assert session.open_requests == 1
    assert session.answer_error(request, "CodecError", "cannot encode") is True
    assert request.state == ANSWERED
    assert wire.take() == [
        {"error": "CodecError", "message": "cannot encode", "key": "k", "direction": "ERROR"}
    ]


@pytest.mark.parametrize("body", [[1, 2], "text", 5, True, ("a", 1)])
@pytest.mark.parametrize("direction", ANSWERS)
def test_an_answer_that_is_not_a_dict_leaves_the_request_open(
    body: Any, direction: Direction
) -> None:
    session, wire = make()
    request = incoming(session)
    with pytest.raises(TypeError, match="must be a dict"):
        session.answer(request, direction, body)
    assert len(wire) == 0
    assert request.state == OPEN
    assert session.answer(request, ERROR, {"error": "TypeError"}) is True
    assert request.state == ANSWERED


def test_a_dict_subclass_is_a_fine_answer() -> None:
    session, wire = make()
    request = incoming(session)
    session.answer(request, REPLY, OrderedDict(a=1))
    assert wire.take() == [{"a": 1, "key": "k", "direction": "REPLY"}]


@pytest.mark.parametrize("direction", [REQUEST, MESSAGE, ACK, CANCEL])
def test_answering_with_a_direction_that_is_not_an_answer_writes_nothing(
    direction: Direction,
) -> None:
    # The module's rule: a method raises *before* anything is written and leaves
    # the session unchanged when the message cannot be sent.
    session, wire = make()
    request = incoming(session)
    with pytest.raises(LocalProtocolError, match="not an answer"):
        session.answer(request, direction, {})
    assert wire.frames == []
    assert request.state == OPEN
    assert session.answer(request, REPLY, {}) is True


def test_answering_does_not_modify_the_callers_dict_and_a_reused_dict_gets_each_key() -> None:
    session, wire = make()
    first = incoming(session, "k1")
    second = incoming(session, "k2")
    body = {"result": [1, 2], "key": "caller's", "direction": "whatever"}
    before = copy.deepcopy(body)
    session.answer(first, PARTIAL, body)
    session.answer(first, REPLY, body)
    session.answer(second, ERROR, body)
    assert body == before
    sent = wire.take()
    assert [(m["key"], m["direction"]) for m in sent] == [
        ("k1", "PARTIAL"),
        ("k1", "REPLY"),
        ("k2", "ERROR"),
    ]
    assert all(m["result"] == [1, 2] for m in sent)


def test_answer_error_sends_the_safe_body() -> None:
    session, wire = make()
    plain = incoming(session, "k1")
    detailed = incoming(session, "k2")
    assert session.answer_error(plain, "ValueError", "bad amount") is True
    assert session.answer_error(detailed, "KeyError", "'x'", "Traceback ...") is True
    assert wire.take() == [
        {"error": "ValueError", "message": "bad amount", "key": "k1", "direction": "ERROR"},
        {
            "error": "KeyError",
            "message": "'x'",
            "traceback": "Traceback ...",
            "key": "k2",
            "direction": "ERROR",
        },
    ]
    assert plain.state == detailed.state == ANSWERED


def test_answer_error_never_raises() -> None:
    session, wire = make(extensions=True)
    answered = incoming(session, "k1")
    session.answer(answered, REPLY, {})
    assert session.answer_error(answered, "X", "y") is False
    cancelled = incoming(session, "k2")
    session.receive(frame(key="k2", direction="CANCEL"))
    assert session.answer_error(cancelled, "X", "y") is False
    wire.take()
    failing = incoming(session, "k3")
    wire.fail = True
    assert session.answer_error(failing, "X", "y") is False
    assert failing.state == OPEN
    wire.fail = False
    assert session.answer_error(failing, "X", "y") is True


def test_answer_error_with_text_the_codec_refuses_returns_false() -> None:
    session, wire = make(codec=orjson_codec())
    request = incoming(session)
    assert session.answer_error(request, "X", "lone \ud800 surrogate") is False
    assert request.state == OPEN
    assert len(wire) == 0


def test_an_answer_whose_write_fails_leaves_the_request_open() -> None:
    session, wire = make()
    request = incoming(session)
    wire.fail = True
    with pytest.raises(ConnectionError):
        session.answer(request, REPLY, {})
    assert request.state == OPEN
    assert session.open_requests == 1


def test_a_key_can_be_used_again_once_its_request_is_answered() -> None:
    session, _ = make()
    first = incoming(session, "k")
    session.answer(first, REPLY, {})
    second = incoming(session, "k")
    assert second is not first
    assert second.state == OPEN


# -- outgoing: requests, sends --------------------------------------------------


def test_a_request_writes_a_copy_with_key_and_direction() -> None:
    session, wire = make()
    message = {"type": "add", "a": 1, "direction": "MESSAGE"}
    before = copy.deepcopy(message)
    pending = Pending()
    session.request(message, pending)
    assert message == before
    [sent] = wire.take()
    assert UUID4.match(sent["key"])
    assert sent == {"type": "add", "a": 1, "key": sent["key"], "direction": "REQUEST"}
    assert (pending.key, pending.type) == (sent["key"], "add")
    assert session.pending_requests == 1


def test_a_request_keeps_the_key_the_caller_set() -> None:
    session, wire = make()
    pending = requested(session, {"type": "q", "key": "mine"})
    assert pending.key == "mine"
    assert wire.take()[0]["key"] == "mine"


def test_a_reused_dict_gets_fresh_keys() -> None:
    session, wire = make(extensions=True)
    message = {"type": "q", "data": [1]}
    before = copy.deepcopy(message)
    for _ in range(3):
        session.request(message, Pending())
        session.send_acked(message, Pending())
    assert message == before
    keys = [m["key"] for m in wire.take()]
    assert len(set(keys)) == 6
    assert session.pending_requests == 3


def test_send_acked_writes_a_keyed_copy_and_does_not_modify_the_callers_dict() -> None:
    session, wire = make(extensions=True)
    message = {"type": "chat", "text": "hi"}
    pending = Pending()
    session.send_acked(message, pending)
    assert message == {"type": "chat", "text": "hi"}
    [sent] = wire.take()
    assert sent == {"type": "chat", "text": "hi", "key": pending.key}
    assert UUID4.match(pending.key)
    session.send_acked({"key": "own"}, Pending())
    assert wire.take() == [{"key": "own"}]


def test_send_writes_the_message_as_it_is() -> None:
    session, wire = make()
    message = {"type": "chat", "text": "hi"}
    session.send(message)
    assert wire.take() == [message]
    assert message == {"type": "chat", "text": "hi"}
    assert session.pending_requests == 0


@pytest.mark.parametrize("message", [[1], "text", 5, None, ("a",)])
def test_outgoing_messages_must_be_dicts(message: Any) -> None:
    session, wire = make(extensions=True)
    with pytest.raises(TypeError, match="must be a dict"):
        session.send(message)
    with pytest.raises(TypeError, match="must be a dict"):
        session.request(message, Pending())
    with pytest.raises(TypeError, match="must be a dict"):
        session.send_acked(message, Pending())
    assert len(wire) == 0
    assert session.pending_requests == 0


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("value", [{1, 2}, b"raw", object(), 1j])
def test_outgoing_messages_that_cannot_be_encoded_leave_the_session_unchanged(
    codec: Any, value: Any
) -> None:
    session, wire = make(codec=codec(), extensions=True)
    message = {"key": "k", "value": value}
    pending = Pending()
    with pytest.raises(CodecError):
        session.send(message)
    with pytest.raises(CodecError):
        session.request(message, pending)
    with pytest.raises(CodecError):
        session.send_acked(message, pending)
    assert len(wire) == 0
    assert session.pending_requests == 0
    assert pending.key is None
    # the key was not taken: it can be used at once
    session.request({"key": "k"}, Pending())
    session.send_acked({"key": "k"}, Pending())


def test_a_request_whose_write_fails_is_not_tracked() -> None:
    session, wire = make(extensions=True)
    wire.fail = True
    pending = Pending()
    with pytest.raises(ConnectionError):
        session.request({"key": "k"}, pending)
    with pytest.raises(ConnectionError):
        session.send_acked({"key": "k"}, pending)
    assert pending.key is None
    assert session.pending_requests == 0
    assert session.close() == []


# -- the pending table -----------------------------------------------------------


@pytest.mark.parametrize("final", FINALS)
def test_a_final_answer_settles_and_removes_the_request(final: Direction) -> None:
    session, wire = make()
    pending = requested(session, {"type": "add", "key": "k"})
    wire.take()
    event = session.receive(frame(key="k", direction=final.value, type="sum", value=3))
    assert isinstance(event, AnswerReceived)
    assert event.pending is pending
    assert (event.direction, event.key, event.type) == (final, "k", "sum")
    assert event.message["value"] == 3
    assert session.pending_requests == 0
    # a second end for the same key matches nothing any more
    again = rejected(session.receive(frame(key="k", direction=final.value)))
    assert again.replied is False
    assert len(wire) == 0


def test_partials_keep_the_request_pending() -> None:
    session, wire = make()
    pending = requested(session, {"key": "k"})
    wire.take()
    for i in range(3):
        event = session.receive(frame(key="k", direction="PARTIAL", i=i))
        assert isinstance(event, AnswerReceived)
        assert (event.pending, event.direction, event.message["i"]) == (pending, PARTIAL, i)
        assert session.pending_requests == 1
    event = session.receive(frame(key="k", direction="reply"))
    assert isinstance(event, AnswerReceived)
    assert event.direction is REPLY
    assert session.pending_requests == 0
    assert len(wire) == 0


@pytest.mark.parametrize("key", ["unknown", None, 5, ["k"], {"k": 1}])
@pytest.mark.parametrize("direction", ANSWERS)
@pytest.mark.parametrize("extensions", [False, True])
def test_an_answer_for_an_unknown_key_is_rejected_and_never_answered(
    extensions: bool, direction: Direction, key: Any
) -> None:
    session, wire = make(extensions=extensions)
    requested(session, {"key": "k"})
    wire.take()
    event = rejected(session.receive(frame(key=key, direction=direction.value)))
    assert event.replied is False
    assert isinstance(event.error, RemoteProtocolError)
    assert len(wire) == 0
    assert session.pending_requests == 1


@pytest.mark.parametrize("extensions", [False, True])
def test_a_late_answer_for_an_abandoned_request_is_dropped(extensions: bool) -> None:
    session, wire = make(extensions=extensions)
    pending = requested(session, {"key": "k"})
    assert session.abandon(pending) is True
    wire.take()
    for direction in [PARTIAL, PARTIAL, ERROR, REPLY]:
        event = session.receive(frame(key="k", direction=direction.value.lower()))
        assert isinstance(event, AnswerDropped)
        assert (event.direction, event.key) == (direction, "k")
    assert len(wire) == 0


@pytest.mark.parametrize("extensions", [False, True])
def test_abandon_cancels_a_request_only_under_the_extensions(extensions: bool) -> None:
    session, wire = make(extensions=extensions)
    pending = requested(session, {"key": "k"})
    wire.take()
    assert session.abandon(pending) is True
    assert session.pending_requests == 0
    assert wire.take() == ([{"key": "k", "direction": "CANCEL"}] if extensions else [])


def test_abandoning_an_acknowledged_send_writes_no_cancel() -> None:
    session, wire = make(extensions=True)
    pending = Pending()
    session.send_acked({"key": "m"}, pending)
    wire.take()
    assert session.abandon(pending) is True
    assert len(wire) == 0
    assert session.receive(frame(key="m", direction="ACK")) is None


def test_abandon_is_false_once_settled() -> None:
    session, wire = make(extensions=True)
    pending = requested(session, {"key": "k"})
    session.receive(frame(key="k", direction="REPLY"))
    wire.take()
    assert session.abandon(pending) is False
    never_sent = Pending()
    assert session.abandon(never_sent) is False
    abandoned = requested(session, {"key": "j"})
    assert session.abandon(abandoned) is True
    wire.take()
    assert session.abandon(abandoned) is False
    assert len(wire) == 0


def test_abandon_leaves_another_record_with_the_same_key_alone() -> None:
    session, _ = make(extensions=True)
    request = requested(session, {"key": "k"})
    delivery = Pending()
    session.send_acked({"key": "k"}, delivery)
    impostor = Pending()
    impostor.key = "k"
    assert session.abandon(impostor) is False
    assert session.pending_requests == 1
    assert isinstance(session.receive(frame(key="k", direction="ACK")), AckReceived)
    event = session.receive(frame(key="k", direction="REPLY"))
    assert isinstance(event, AnswerReceived)
    assert event.pending is request


def test_the_memory_of_abandoned_keys_is_bounded() -> None:
    session, wire = make(extensions=False)
    keys = [f"k{i}" for i in range(ABANDONED_MEMORY + 1)]
    for key in keys:
        session.abandon(requested(session, {"key": key}))
    wire.take()
    assert len(session._abandoned) <= ABANDONED_MEMORY
    forgotten = rejected(session.receive(frame(key=keys[0], direction="REPLY")))
    assert forgotten.replied is False
    for key in (keys[1], keys[-1]):
        assert isinstance(session.receive(frame(key=key, direction="REPLY")), AnswerDropped)
    assert len(wire) == 0


def test_max_pending_refuses_before_writing() -> None:
    session, wire = make(max_pending=2)
    first = requested(session, {"key": "a"})
    requested(session, {"key": "b"})
    wire.take()
    third = Pending()
    with pytest.raises(LimitExceeded):
        session.request({"key": "c"}, third)
    assert len(wire) == 0
    assert third.key is None
    assert session.pending_requests == 2
    session.receive(frame(key="a", direction="REPLY"))
    session.request({"key": "c"}, third)
    assert session.pending_requests == 2
    with pytest.raises(LimitExceeded):
        requested(session)
    session.abandon(third)
    requested(session)
    assert first.key == "a"


def test_a_duplicate_caller_key_is_refused() -> None:
    session, wire = make()
    first = requested(session, {"key": "k"})
    wire.take()
    second = Pending()
    with pytest.raises(LocalProtocolError, match="already pending"):
        session.request({"key": "k"}, second)
    assert len(wire) == 0
    assert second.key is None
    event = session.receive(frame(key="k", direction="REPLY"))
    assert isinstance(event, AnswerReceived)
    assert event.pending is first


@pytest.mark.parametrize("key", [5, 5.0, b"k", ["k"], True, {"k": 1}])
def test_a_key_that_is_not_a_string_is_refused(key: Any) -> None:
    session, wire = make(extensions=True)
    with pytest.raises(LocalProtocolError, match="must be a string"):
        session.request({"key": key}, Pending())
    with pytest.raises(LocalProtocolError, match="must be a string"):
        session.send_acked({"key": key}, Pending())
    assert len(wire) == 0
    assert session.pending_requests == 0


def test_a_key_may_be_used_again_once_settled() -> None:
    session, _ = make()
    requested(session, {"key": "k"})
    session.receive(frame(key="k", direction="ERROR"))
    pending = requested(session, {"key": "k"})
    event = session.receive(frame(key="k", direction="REPLY"))
    assert isinstance(event, AnswerReceived)
    assert event.pending is pending


# -- acknowledged sends ------------------------------------------------------------


def test_acknowledged_sends_need_the_extensions() -> None:
    session, wire = make(extensions=False)
    pending = Pending()
    with pytest.raises(LocalProtocolError, match=r"wyre\.v2"):
        session.send_acked({"type": "chat"}, pending)
    assert len(wire) == 0
    assert pending.key is None


def test_an_ack_settles_its_send_once() -> None:
    session, wire = make(extensions=True)
    pending = Pending()
    session.send_acked({"type": "chat"}, pending)
    wire.take()
    event = session.receive(frame(key=pending.key, direction="ack"))
    assert isinstance(event, AckReceived)
    assert event.pending is pending
    assert session.receive(frame(key=pending.key, direction="ACK")) is None
    assert session.close() == []
    assert len(wire) == 0


def test_a_duplicate_acknowledged_key_is_refused() -> None:
    session, wire = make(extensions=True)
    session.send_acked({"key": "m"}, Pending())
    wire.take()
    with pytest.raises(LocalProtocolError, match="already awaiting"):
        session.send_acked({"key": "m"}, Pending())
    assert len(wire) == 0


@pytest.mark.parametrize("key", ["nobody", None, 5])
def test_ack_and_cancel_for_unknown_keys_are_ignored(key: Any) -> None:
    session, wire = make(extensions=True)
    requested(session, {"key": "r"})
    incoming(session, "i")
    wire.take()
    assert session.receive(frame(key=key, direction="ACK")) is None
    assert session.receive(frame(key=key, direction="CANCEL")) is None
    assert len(wire) == 0
    assert (session.pending_requests, session.open_requests) == (1, 1)


def test_an_ack_does_not_settle_a_request() -> None:
    session, _ = make(extensions=True)
    requested(session, {"key": "k"})
    assert session.receive(frame(key="k", direction="ACK")) is None
    assert session.pending_requests == 1


# -- expiry and close ------------------------------------------------------------


def _with_deadline(deadline: float | None) -> Pending:
    pending = Pending()
    pending.deadline = deadline
    return pending


@pytest.mark.parametrize("extensions", [False, True])
def test_expire_returns_exactly_the_overdue_and_the_earliest_deadline_left(
    extensions: bool,
) -> None:
    session, wire = make(extensions=extensions)
    forever = _with_deadline(None)
    r5, r10, r20 = _with_deadline(5.0), _with_deadline(10.0), _with_deadline(20.0)
    session.request({"key": "forever"}, forever)
    session.request({"key": "r5"}, r5)
    session.request({"key": "r10"}, r10)
    session.request({"key": "r20"}, r20)
    a10, a15 = _with_deadline(10.0), _with_deadline(15.0)
    if extensions:
        session.send_acked({"key": "a10"}, a10)
        session.send_acked({"key": "a15"}, a15)
    wire.take()

    assert session.expire(4.9) == ([], 5.0)
    expired, earliest = session.expire(10.0)  # deadlines at or before now
    want = {id(p) for p in ([r5, r10, a10] if extensions else [r5, r10])}
    assert {id(p) for p in expired} == want
    assert len(expired) == len(want)
    assert earliest == (15.0 if extensions else 20.0)
    cancels = wire.take()
    assert sorted(m["key"] for m in cancels) == (["r10", "r5"] if extensions else [])
    assert all(m["direction"] == "CANCEL" for m in cancels)
    assert session.expire(10.0) == ([], earliest)

    # an expired request is abandoned: its late answer is dropped
    assert isinstance(session.receive(frame(key="r5", direction="REPLY")), AnswerDropped)
    expired, earliest = session.expire(1e9)
    assert {id(p) for p in expired} == ({id(r20), id(a15)} if extensions else {id(r20)})
    assert earliest is None
    assert session.close() == [forever]


def test_expire_with_nothing_or_no_deadlines() -> None:
    session, wire = make()
    assert session.expire(0.0) == ([], None)
    session.request({"key": "k"}, _with_deadline(None))
    assert session.expire(1e12) == ([], None)
    assert session.pending_requests == 1
    wire.take()
    assert len(wire) == 0


def test_close_returns_everything_pending_once() -> None:
    session, wire = make(extensions=True)
    requests = [requested(session) for _ in range(3)]
    delivery = Pending()
    session.send_acked({"type": "chat"}, delivery)
    wire.take()
    left = session.close()
    assert {id(p) for p in left} == {id(p) for p in [*requests, delivery]}
    assert len(left) == 4
    assert session.pending_requests == 0
    assert session.close() == []
    assert session.expire(1e12) == ([], None)
    assert all(session.abandon(p) is False for p in left)
    assert len(wire) == 0


# -- reading directions ------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["REQUEST", "request", "Request", "rEqUeSt"])
def test_request_directions_are_read_without_regard_to_case(spelling: str) -> None:
    session, wire = make()
    event = session.receive(frame(key="k", direction=spelling, type=5))
    assert isinstance(event, IncomingRequest)
    assert (event.key, event.type) == ("k", 5)
    assert len(wire) == 0


@pytest.mark.parametrize("extensions", [False, True])
@pytest.mark.parametrize(
    "fields",
    [{}, {"direction": None}, {"direction": "MESSAGE"}, {"direction": "message"}],
    ids=["absent", "null", "MESSAGE", "message"],
)
def test_an_absent_direction_means_message(extensions: bool, fields: dict[str, Any]) -> None:
    session, wire = make(extensions=extensions)
    event = session.receive(frame(type="chat", text="hi", **fields))
    assert isinstance(event, IncomingMessage)
    assert (event.key, event.type) == (None, "chat")
    assert event.message["text"] == "hi"
    assert len(wire) == 0


@pytest.mark.parametrize("direction", [None, "MESSAGE", "Message"])
def test_a_keyed_message_is_acked_under_the_extensions(direction: str | None) -> None:
    session, wire = make(extensions=True)
    event = session.receive(frame(key="m1", type="chat", direction=direction))
    assert isinstance(event, IncomingMessage)
    assert event.key == "m1"
    assert wire.take() == [{"key": "m1", "direction": "ACK"}]


def test_a_keyed_message_is_not_acked_without_the_extensions() -> None:
    session, wire = make(extensions=False)
    event = session.receive(frame(key="m1", type="chat"))
    assert isinstance(event, IncomingMessage)
    assert event.key == "m1"
    assert len(wire) == 0


def test_a_failed_ack_write_does_not_lose_the_message() -> None:
    session, wire = make(extensions=True)
    wire.fail = True
    event = session.receive(frame(key="m1", type="chat"))
    assert isinstance(event, IncomingMessage)


def test_a_failed_cancel_write_still_abandons() -> None:
    session, wire = make(extensions=True)
    pending = requested(session, {"key": "k"})
    wire.fail = True
    assert session.abandon(pending) is True
    assert session.pending_requests == 0
    assert isinstance(session.receive(frame(key="k", direction="REPLY")), AnswerDropped)


@pytest.mark.parametrize(
    "direction",
    ["RESUEST", "", "REQUEST ", "ANSWER", 5, 1.5, True, ["REQUEST"], {"d": 1}],
)
@pytest.mark.parametrize("extensions", [False, True])
def test_an_unknown_direction_with_a_key_gets_an_error(extensions: bool, direction: Any) -> None:
    session, wire = make(extensions=extensions)
    event = rejected(session.receive(frame(key="k9", direction=direction)))
    assert isinstance(event.error, RemoteProtocolError)
    assert "unknown direction" in str(event.error)
    assert event.replied is True
    [sent] = wire.take()
    assert sent["key"] == "k9"
    assert sent["direction"] == "ERROR"
    assert sent["error"] == "RemoteProtocolError"
    assert "unknown direction" in sent["message"]
    assert session.open_requests == 0


@pytest.mark.parametrize("direction", ["RESUEST", 5, ["x"]])
def test_an_unknown_direction_without_a_key_gets_no_answer(direction: Any) -> None:
    session, wire = make()
    event = rejected(session.receive(frame(direction=direction, type="x")))
    assert event.replied is False
    assert len(wire) == 0


def test_an_unknown_direction_for_a_running_key_gets_no_answer() -> None:
    session, wire = make()
    request = incoming(session, "k")
    event = rejected(session.receive(frame(key="k", direction="RESUEST")))
    assert event.replied is False
    assert len(wire) == 0
    assert request.state == OPEN
    assert session.answer(request, REPLY, {}) is True


@pytest.mark.parametrize("direction", ["ACK", "ack", "CANCEL", "Cancel"])
def test_ack_and_cancel_without_the_extensions_are_unknown_directions(direction: str) -> None:
    session, wire = make(extensions=False)
    running = incoming(session, "k")
    requested(session, {"key": "r"})
    wire.take()
    for key in ("k", "r", "other"):
        event = rejected(session.receive(frame(key=key, direction=direction)))
        assert "unknown direction" in str(event.error)
        assert event.replied is False
    assert len(wire) == 0
    assert running.state == OPEN
    assert (session.pending_requests, session.open_requests) == (1, 1)


@pytest.mark.parametrize("fields", [{}, {"key": None}], ids=["absent", "null"])
def test_a_request_without_a_key_is_rejected_without_an_answer(fields: dict[str, Any]) -> None:
    session, wire = make()
    event = rejected(session.receive(frame(direction="REQUEST", type="q", **fields)))
    assert isinstance(event.error, RemoteProtocolError)
    assert "without a key" in str(event.error)
    assert event.replied is False
    assert len(wire) == 0
    assert session.open_requests == 0


@pytest.mark.parametrize("key", [5, 1.5, True])
def test_a_request_with_a_key_that_is_not_a_string_gets_an_error(key: Any) -> None:
    # docs/protocol.md: a REQUEST that cannot be handled and whose key could be
    # read gets an ERROR with that key.
    session, wire = make()
    event = rejected(session.receive(frame(key=key, direction="REQUEST")))
    assert "not a string" in str(event.error)
    assert event.replied is True
    [sent] = wire.take()
    assert (sent["key"], sent["direction"]) == (key, "ERROR")
    assert session.open_requests == 0


@pytest.mark.parametrize("key", [["k"], {"k": 1}])
def test_a_request_with_an_unhashable_key_is_rejected(key: Any) -> None:
    session, _ = make()
    event = rejected(session.receive(frame(key=key, direction="REQUEST")))
    assert "not a string" in str(event.error)
    assert session.open_requests == 0


def test_a_duplicate_running_key_gets_exactly_one_duplicate_key_error() -> None:
    session, wire = make()
    incoming(session, "k")
    event = rejected(session.receive(frame(key="k", direction="REQUEST")))
    assert "duplicate" in str(event.error)
    assert event.replied is True
    sent = wire.take()
    assert [(m["key"], m["direction"], m["error"]) for m in sent] == [
        ("k", "ERROR", "DuplicateKey")
    ]


def test_a_duplicate_key_leaves_the_running_request_open() -> None:
    # session._reject: "Neither does a key that is already running" get an ERROR;
    # the running request's own handler still owes its answer.
    session, wire = make()
    running = incoming(session, "k")
    session.receive(frame(key="k", direction="REQUEST"))
    wire.take()
    assert running.state == OPEN
    assert session.open_requests == 1
    assert session.answer(running, REPLY, {"ok": True}) is True
    assert wire.take() == [{"ok": True, "key": "k", "direction": "REPLY"}]


def test_a_failed_error_write_is_reported_as_not_replied() -> None:
    session, wire = make()
    wire.fail = True
    event = rejected(session.receive(frame(key="k", direction="RESUEST")))
    assert event.replied is False


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe\x00", "not json", "", '{"a":', '{"a":1}x', "{'a': 1}", b'{"a":"\xff"}'],
)
def test_an_undecodable_frame_is_rejected_without_an_answer(codec: Any, data: Any) -> None:
    session, wire = make(codec=codec())
    event = rejected(session.receive(data))
    assert isinstance(event.error, CodecError)
    assert event.replied is False
    assert len(wire) == 0


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    "data", ["[1,2]", '[{"key":"k","direction":"REQUEST"}]', "42", "1.5", '"REQUEST"', "null"]
)
def test_a_frame_that_is_not_an_object_is_rejected(codec: Any, data: str) -> None:
    session, wire = make(codec=codec())
    event = rejected(session.receive(data))
    assert isinstance(event.error, RemoteProtocolError)
    assert "not an object" in str(event.error)
    assert event.replied is False
    assert len(wire) == 0


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_nan_and_infinity_literals_are_refused(codec: Any, literal: str) -> None:
    session, wire = make(codec=codec())
    data = '{"key":"k","direction":"REQUEST","x":' + literal + "}"
    event = rejected(session.receive(data))
    assert isinstance(event.error, CodecError)
    assert event.replied is False
    assert len(wire) == 0
    assert session.open_requests == 0


@pytest.mark.parametrize("codec", CODECS)
def test_a_binary_frame_carries_the_same_json(codec: Any) -> None:
    session, _ = make(codec=codec())
    event = session.receive(b'{"key":"k","direction":"REQUEST","t":"\xc3\xa9"}')
    assert isinstance(event, IncomingRequest)
    assert event.message["t"] == "é"


HUGE = 1_000_000


@pytest.mark.parametrize(
    "fields",
    [
        {"key": "k", "direction": "X" * HUGE},
        {"key": "k", "direction": list(range(HUGE // 10))},
        {"key": "k", "direction": {"nested": "y" * HUGE}},
        {"key": "k", "direction": "BAD", "type": "T" * HUGE},
        {"key": "k", "direction": "BAD", "body": "b" * HUGE},
        {"direction": "X" * HUGE, "type": "T" * HUGE},
        {"key": 7, "direction": "REQUEST", "type": "T" * HUGE},
        {"key": ["x"] * (HUGE // 10), "direction": "REQUEST"},
    ],
    ids=[
        "direction",
        "direction-list",
        "direction-dict",
        "type",
        "body",
        "no-key",
        "bad-key",
        "huge-bad-key",
    ],
)
def test_errors_about_huge_fields_stay_short(fields: dict[str, Any]) -> None:
    session, wire = make()
    event = rejected(session.receive(frame(**fields)))
    assert len(str(event.error)) < SHORT
    assert len(event.error.preview) < SHORT
    for data, _ in wire.frames:
        assert len(data) < 2 * SHORT


def test_an_undecodable_huge_frame_makes_a_short_error() -> None:
    session, _ = make()
    event = rejected(session.receive("{" * HUGE))
    assert len(str(event.error)) < SHORT


def test_a_huge_type_in_a_good_request_is_kept() -> None:
    session, _ = make()
    request = incoming(session, "k", type="T" * HUGE)
    assert request.type == "T" * HUGE


# -- custom envelopes ---------------------------------------------------------------
# A use()-style envelope whose messages are lists: [direction, key, type, body].


def _set_item(index: int) -> Any:
    def setter(message: Any, value: Any) -> None:
        message[index] = value

    return setter


LIST_ENVELOPE = (
    Envelope(codec=json_codec())
    .using("direction", lambda m: m[0], _set_item(0))
    .using("key", lambda m: m[1], _set_item(1))
    .using("type", lambda m: m[2], None)
)

# Protocol fields in a nested object: {"meta": {"id", "dir", "kind"}, ...}.
NESTED_ENVELOPE = (
    Envelope(codec=json_codec())
    .using("key", lambda m: m["meta"].get("id"), lambda m, v: m["meta"].__setitem__("id", v))
    .using(
        "direction",
        lambda m: m["meta"].get("dir"),
        lambda m, v: m["meta"].__setitem__("dir", v),
    )
    .using("type", lambda m: m["meta"].get("kind"), None)
)

# Protocol fields renamed at the top level.
RENAMED_ENVELOPE = (
    Envelope(codec=json_codec())
    .using("key", lambda m: m.get("id"), lambda m, v: m.__setitem__("id", v))
    .using("direction", lambda m: m.get("dir"), lambda m, v: m.__setitem__("dir", v))
)


def test_a_custom_envelope_allows_messages_that_are_not_dicts() -> None:
    session, wire = make(envelope=LIST_ENVELOPE)
    event = session.receive('["REQUEST","k","add",{"a":1}]')
    assert isinstance(event, IncomingRequest)
    assert (event.key, event.type) == ("k", "add")
    answer = [None, None, "sum", {"v": 1}]
    session.answer(event, REPLY, answer)
    assert answer == [None, None, "sum", {"v": 1}]
    assert wire.take() == [["REPLY", "k", "sum", {"v": 1}]]

    message = ["?", None, "add", {"a": 2}]
    pending = Pending()
    session.request(message, pending)
    assert message == ["?", None, "add", {"a": 2}]
    [sent] = wire.take()
    assert (sent[0], sent[1], sent[2]) == ("REQUEST", pending.key, "add")
    assert pending.type == "add"
    reply = session.receive(json.dumps(["reply", pending.key, None, {}]))
    assert isinstance(reply, AnswerReceived)
    assert reply.pending is pending


@pytest.mark.parametrize("data", ['{"key":"k","direction":"REQUEST"}', "5", "[]", '"s"', "null"])
def test_frames_a_custom_envelope_cannot_read_are_rejected(data: str) -> None:
    session, wire = make(envelope=LIST_ENVELOPE)
    event = rejected(session.receive(data))
    assert event.replied is False
    assert len(wire) == 0


def test_the_default_envelope_refuses_what_a_custom_one_accepts() -> None:
    session, _ = make()
    rejected(session.receive('["REQUEST","k","add",{"a":1}]'))


@pytest.mark.parametrize("envelope", [RENAMED_ENVELOPE, NESTED_ENVELOPE], ids=["renamed", "nested"])
def test_a_custom_envelope_never_modifies_the_callers_message(envelope: Envelope) -> None:
    session, wire = make(envelope=envelope, extensions=True)
    nested = envelope is NESTED_ENVELOPE
    base = {"meta": {"kind": "q"}, "x": 1} if nested else {"x": 1}
    request_message = copy.deepcopy(base)
    session.request(request_message, Pending())
    acked_message = copy.deepcopy(base)
    session.send_acked(acked_message, Pending())
    frame_in = {"meta": {"id": "k", "dir": "REQUEST"}} if nested else {"id": "k", "dir": "REQUEST"}
    request = session.receive(json.dumps(frame_in))
    assert isinstance(request, IncomingRequest)
    answer_message = copy.deepcopy(base)
    session.answer(request, REPLY, answer_message)
    assert len(wire) == 3
    assert request_message == base
    assert acked_message == base
    assert answer_message == base


@pytest.mark.parametrize("envelope", [RENAMED_ENVELOPE, NESTED_ENVELOPE], ids=["renamed", "nested"])
def test_a_custom_envelope_gives_a_reused_message_fresh_keys(envelope: Envelope) -> None:
    session, _ = make(envelope=envelope)
    message: dict[str, Any] = {"meta": {}} if envelope is NESTED_ENVELOPE else {}
    keys = set()
    for _ in range(3):
        pending = Pending()
        session.request(message, pending)
        keys.add(pending.key)
    assert len(keys) == 3


# -- penalise: the bad-frame budget -------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_penalise_tolerates_the_limit_at_one_instant_then_closes(limit: int) -> None:
    session, _ = make(max_bad_frames=limit)
    for _ in range(limit):
        assert session.penalise(500.0) is None
    verdict = session.penalise(500.0)
    assert verdict is not None
    code, reason = verdict
    assert code == 1008
    assert len(reason.encode()) <= 123  # what a WebSocket close frame can carry


@pytest.mark.parametrize("limit", [1, 5, 100])
def test_penalise_never_closes_when_bad_frames_are_spread_out(limit: int) -> None:
    session, _ = make(max_bad_frames=limit)
    now = 1000.0
    for _ in range(50):  # a full budget every window
        for _ in range(limit):
            assert session.penalise(now) is None
        now += BAD_FRAME_WINDOW
    for _ in range(20 * limit):  # the same rate, evenly
        now += BAD_FRAME_WINDOW / limit
        assert session.penalise(now) is None


def test_penalise_forgives_after_a_quiet_window() -> None:
    session, _ = make(max_bad_frames=3)
    for _ in range(4):
        verdict = session.penalise(10.0)
    assert verdict is not None
    for _ in range(3):
        assert session.penalise(10.0 + 2 * BAD_FRAME_WINDOW) is None


def test_penalise_with_no_limit_never_closes() -> None:
    session, _ = make(max_bad_frames=None)
    assert all(session.penalise(1.0) is None for _ in range(10_000))


def test_penalise_with_a_zero_budget_closes_at_once() -> None:
    session, _ = make(max_bad_frames=0)
    verdict = session.penalise(1.0)
    assert verdict is not None
    assert verdict[0] == 1008


def test_penalise_starts_with_a_full_budget_whatever_the_clock() -> None:
    session, _ = make(max_bad_frames=2)
    assert session.penalise(1e9) is None
    assert session.penalise(1e9) is None
    assert session.penalise(1e9) is not None


# -- codecs: json and orjson accept and refuse the same values ----------------------


class Colour(enum.Enum):
    RED = "red"
    NAN = math.nan


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int
    y: float
    at: datetime.datetime


@dataclasses.dataclass
class Reading:
    value: float


PLUS_0530 = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
MOMENT = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)

CODEC_VALUES = [
    pytest.param(MOMENT, id="datetime-naive-us"),
    pytest.param(MOMENT.replace(microsecond=0), id="datetime-naive"),
    pytest.param(MOMENT.replace(tzinfo=datetime.UTC), id="datetime-utc-us"),
    pytest.param(MOMENT.replace(microsecond=7, tzinfo=PLUS_0530), id="datetime-+0530"),
    pytest.param(datetime.date(2024, 2, 29), id="date"),
    pytest.param(datetime.time(1, 2, 3), id="time"),
    pytest.param(datetime.time(1, 2, 3, 456, tzinfo=datetime.UTC), id="time-utc-us"),
    pytest.param(uuid.UUID("12345678-1234-5678-1234-567812345678"), id="uuid"),
    pytest.param(Point(1, 2.5, MOMENT), id="dataclass"),
    pytest.param({"p": [Point(-1, 0.0, MOMENT)]}, id="dataclass-nested"),
    pytest.param(Colour.RED, id="enum"),
    pytest.param({"level": Level.HIGH}, id="intenum"),
    pytest.param({1: "a", 2: "b"}, id="int-keys"),
    pytest.param({1.5: "a", True: "b", None: "c"}, id="float-bool-none-keys"),
    pytest.param({"n": 2**64 - 1, "m": -(2**63)}, id="int-64-bit-bounds"),
    pytest.param([1, (2, [3, (4, ())]), {"t": (5,)}], id="nested-lists-tuples"),
    pytest.param({"s": "é\u2028😀", "f": 0.1, "z": -0.0, "e": 1e300}, id="plain-json"),
    pytest.param(math.nan, id="nan"),
    pytest.param({"x": math.inf}, id="inf"),
    pytest.param({"x": [(-math.inf,)]}, id="-inf-nested"),
    pytest.param({"r": Reading(math.nan)}, id="nan-in-dataclass"),
    pytest.param({"c": Colour.NAN}, id="nan-enum-value"),
    pytest.param({math.nan: 1}, id="nan-key"),
    pytest.param({math.inf: 1}, id="inf-key"),
    pytest.param({datetime.date(2024, 1, 1): 1}, id="date-key"),
    pytest.param({uuid.UUID(int=1): 1}, id="uuid-key"),
    pytest.param({Colour.RED: 1}, id="enum-key"),
    pytest.param({(1, 2): 1}, id="tuple-key"),
    pytest.param({1, 2}, id="set"),
    pytest.param({"s": frozenset([1])}, id="frozenset"),
    pytest.param({"b": b"x"}, id="bytes"),
    pytest.param({"c": 1j}, id="complex"),
    pytest.param({"s": "lone \ud800 surrogate"}, id="lone-surrogate"),
]


def _encode(codec: Codec, value: Any) -> str | bytes:
    """Encode as the codec's contract says: ``fallback`` takes what ``encode`` refused."""
    try:
        return codec.encode(value)
    except Exception:
        if codec.fallback is None:
            raise
        return codec.fallback(value)


def _round_trip(codec: Codec, value: Any) -> tuple[str, Any] | None:
    """The text ``codec`` writes for ``value`` and what it reads back; None if refused."""
    try:
        data = _encode(codec, value)
    except (ValueError, TypeError):
        return None
    text = data.decode() if isinstance(data, bytes) else data
    return text, codec.decode(data)


@pytest.mark.parametrize("value", CODEC_VALUES)
def test_json_and_orjson_accept_and_refuse_the_same_values(value: Any) -> None:
    by_json = _round_trip(json_codec(), value)
    by_orjson = _round_trip(orjson_codec(), value)
    assert (by_json is None) == (by_orjson is None), (by_json, by_orjson)
    if by_json is not None and by_orjson is not None:
        assert by_json[0] == by_orjson[0]  # the same compact JSON
        assert by_json[1] == by_orjson[1]
        assert type(by_json[1]) is type(by_orjson[1])
        assert json.dumps(by_json[1]) == json.dumps(by_orjson[1])  # also inside


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    "value",
    [{1, 2}, frozenset(), b"x", object(), [1, ({2},)]],
    ids=["set", "frozenset", "bytes", "object", "nested-set"],
)
def test_refused_values_are_codec_errors_in_the_session(codec: Any, value: Any) -> None:
    session, wire = make(codec=codec())
    request = incoming(session)
    with pytest.raises(CodecError):
        session.request({"v": value}, Pending())
    with pytest.raises(CodecError):
        session.answer(request, REPLY, {"v": value})
    with pytest.raises(CodecError):
        session.send({"v": value})
    assert len(wire) == 0


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    ("value", "written"),
    [
        (math.nan, None),
        (-math.inf, None),
        ([1.5, (math.inf, {"n": math.nan})], [1.5, [None, {"n": None}]]),
        (Reading(math.nan), {"value": None}),
    ],
    ids=["nan", "-inf", "nested", "dataclass"],
)
def test_nan_and_infinities_are_written_as_null(codec: Any, value: Any, written: Any) -> None:
    # codecs.py: written as null, exactly as JSON.stringify writes them
    session, wire = make(codec=codec(), extensions=True)
    request = incoming(session)
    session.send({"v": value})
    session.request({"v": value}, Pending())
    session.send_acked({"v": value}, Pending())
    session.answer(request, PARTIAL, {"v": value})
    session.answer_error(request, "E", "e")
    sent = wire.take()
    assert [m["v"] for m in sent[:4]] == [written] * 4
    assert request.state == ANSWERED


@pytest.mark.parametrize(
    "data",
    [
        '{"a":NaN}',
        '{"a":Infinity}',
        '{"a":-Infinity}',
        '{"a":1e400}',
        '{"a":-1e400}',
        '{"a":1,"a":2}',
        '{"a":1.0}',
    ],
    ids=[
        "NaN",
        "Infinity",
        "-Infinity",
        "overflow-to-inf",
        "overflow-to--inf",
        "duplicate-field",
        "float",
    ],
)
def test_json_and_orjson_decode_alike(data: str) -> None:
    def decoded(codec: Codec) -> tuple[bool, Any]:
        try:
            return True, codec.decode(data)
        except ValueError:
            return False, None

    by_json, by_orjson = decoded(json_codec()), decoded(orjson_codec())
    assert by_json == by_orjson
    if by_json[0]:
        assert type(by_json[1]["a"]) is type(by_orjson[1]["a"])


@pytest.mark.parametrize("value", [{"n": 2**70}, {"n": [-(2**65)]}], ids=["big", "negative-nested"])
def test_integers_beyond_64_bits_are_written_alike_and_read_back_as_documented(value: Any) -> None:
    # The documented difference (codecs.py): json reads them exactly, orjson as floats.
    by_json = _round_trip(json_codec(), value)
    by_orjson = _round_trip(orjson_codec(), value)
    assert by_json is not None and by_orjson is not None
    assert by_json[0] == by_orjson[0]
    assert by_json[1] == value
    assert by_orjson[1] == json.loads(json.dumps(value), parse_int=float)


def test_a_lone_surrogate_escape_is_read_as_documented() -> None:
    # The documented difference (codecs.py): json accepts it, orjson refuses the frame.
    data = '{"a":"\\ud800"}'
    assert json_codec().decode(data) == {"a": "\ud800"}
    with pytest.raises(ValueError):
        orjson_codec().decode(data)

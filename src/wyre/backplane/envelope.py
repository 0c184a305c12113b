"""What crosses the backplane: a small versioned envelope, without I/O.

::

    wyre1 <kind> <source node> <target> <call id>\\n<JSON object of extras>\\n<payload>

* ``kind``: what it is (:class:`Kind`);
* ``source``: the node that sent it (a node ignores nothing of its own but
  its health pings);
* ``target``: a connection id, a group name, or ``-``;
* ``call``: the id that ties a request to its answers, or ``-``;
* extras: a JSON object (timeouts, close codes, the ids a broadcast excludes);
* ``payload``: a message frame exactly as the server's codec encoded it, so
  a broadcast is encoded once and written as is to every member.

A node that cannot read an envelope (another version, garbage) reports it
and carries on. Envelopes are bounded (``max_size``): a message too big for
the backplane fails where it is sent, with :class:`~wyre.LimitExceeded`,
instead of being cut by Redis' output-buffer limits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..exceptions import LimitExceeded

__all__ = ["MAGIC", "Envelope", "EnvelopeError", "Kind", "decode", "encode"]

MAGIC = b"wyre1"
"""The format's name and version; a node refuses envelopes of any other."""


class Kind(StrEnum):
    """What an envelope carries."""

    SEND = "send"  # a message for one connection (extras: ack, timeout)
    BROADCAST = "bcast"  # a message for a group, or everyone (extras: exclude)
    REQUEST = "req"  # a request for one connection (extras: timeout)
    PARTIAL = "part"  # a partial answer to a call
    REPLY = "reply"  # the reply to a call
    ERROR = "error"  # the ERROR reply to a call
    DONE = "done"  # a send was written (or acknowledged), or a close is done
    FAILED = "failed"  # a call failed at the target (extras: why, code, reason)
    CANCEL = "cancel"  # the caller gave up on a call
    CLOSE = "close"  # close one connection (extras: code, reason)
    PING = "ping"  # a node's check that its own subscription still hears


class EnvelopeError(ValueError):
    """Bytes that are not an envelope this node can read."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded envelope."""

    kind: Kind
    source: str
    target: str = "-"
    call: str = "-"
    extras: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""


def encode(envelope: Envelope, max_size: int) -> bytes:
    """The bytes of ``envelope``.

    Raises:
        LimitExceeded: they would be larger than ``max_size``.
    """
    for word in (envelope.source, envelope.target, envelope.call):
        if not word or " " in word or "\n" in word:
            raise ValueError(f"an envelope field may not be empty or hold spaces: {word!r}")
    head = b" ".join(
        (MAGIC, envelope.kind.value.encode(), envelope.source.encode(),
         envelope.target.encode(), envelope.call.encode())
    )  # fmt: skip
    extras = json.dumps(envelope.extras, separators=(",", ":")).encode()
    size = len(head) + len(extras) + len(envelope.payload) + 2
    if size > max_size:
        raise LimitExceeded(
            f"a message of {size} bytes is over the backplane's limit of {max_size} bytes"
        )
    return b"".join((head, b"\n", extras, b"\n", envelope.payload))


_KINDS = {kind.value.encode(): kind for kind in Kind}


def decode(data: bytes) -> Envelope:
    """Read an envelope.

    Raises:
        EnvelopeError: not an envelope of this version, or malformed.
    """
    head, sep, rest = data.partition(b"\n")
    extras_text, sep2, payload = rest.partition(b"\n")
    words = head.split(b" ")
    if not sep or not sep2 or len(words) != 5 or words[0] != MAGIC:
        raise EnvelopeError(f"not a {MAGIC.decode()} envelope: {data[:40]!r}")
    kind = _KINDS.get(words[1])
    if kind is None:
        raise EnvelopeError(f"unknown envelope kind {words[1]!r}")
    try:
        extras = json.loads(extras_text)
        source, target, call = (w.decode() for w in words[2:])
    except ValueError as exc:
        raise EnvelopeError(f"unreadable envelope: {exc}") from None
    if not isinstance(extras, dict):
        raise EnvelopeError("an envelope's extras must be a JSON object")
    return Envelope(kind, source, target, call, extras, payload)

"""Small tools for driving a :class:`~wyre.protocol.session.Session` without I/O."""

from __future__ import annotations

import json
from typing import Any

from wyre.protocol.codecs import Codec, json_codec
from wyre.protocol.envelope import Envelope
from wyre.protocol.session import Session


class Wire:
    """Collects what a session writes, as ``(data, binary)`` pairs.

    ``answering`` records, for each frame, whether the session marked it as
    an answer to the peer (REPLY, ERROR, PARTIAL, ACK).
    """

    def __init__(self) -> None:
        self.frames: list[tuple[str | bytes, bool]] = []
        self.answering: list[bool] = []
        self.fail = False

    def write(self, data: str | bytes, binary: bool, answering: bool) -> None:
        if self.fail:
            raise ConnectionError("the connection is closed")
        self.frames.append((data, binary))
        self.answering.append(answering)

    def take(self) -> list[dict[str, Any]]:
        """The decoded frames written so far (and forget them)."""
        taken = [json.loads(data) for data, _ in self.frames]
        self.frames.clear()
        self.answering.clear()
        return taken

    def __len__(self) -> int:
        return len(self.frames)


def make(
    *,
    extensions: bool = True,
    codec: Codec | None = None,
    envelope: Envelope | None = None,
    **options: Any,
) -> tuple[Session, Wire]:
    """A session whose frames go to a fresh :class:`Wire`."""
    wire = Wire()
    if envelope is None:
        envelope = Envelope(codec=codec or json_codec())
    return Session(envelope, extensions=extensions, write=wire.write, **options), wire


def frame(**fields: Any) -> str:
    """A JSON text frame with these fields."""
    return json.dumps(fields)

"""The seam between the protocol and a WebSocket library.

A transport moves frames; it knows nothing of keys, directions or handlers.
The glue for a WebSocket library (``wyre.transports.*``) or the ASGI adapter
implements :class:`Transport` and feeds what it receives to a
:class:`Receiver` (the :class:`~wyre.Connection`).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Listener", "Receiver", "Transport"]


class Transport(Protocol):
    """One open WebSocket, as the protocol needs it."""

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake."""

    def write(self, data: str | bytes, binary: bool) -> None:
        """Queue one frame without waiting (text unless ``binary``; bytes are UTF-8 text).

        Raises:
            Exception: any error means the socket is unusable; the caller
                treats the connection as closed.
        """

    def write_buffer_size(self) -> int:
        """Bytes queued but not yet handed to the kernel."""

    async def drain(self) -> None:
        """Wait until the write buffer is below the transport's low-water mark."""

    def pause_reading(self) -> None:
        """Stop delivering frames until :meth:`resume_reading` (backpressure)."""

    def resume_reading(self) -> None:
        """Deliver frames again."""

    async def close(self, code: int, reason: str) -> None:
        """Run the closing handshake, bounded by the transport's close timeout."""

    def abort(self) -> None:
        """Drop the socket at once, without a closing handshake."""


class Receiver(Protocol):
    """What a transport reports to (implemented by :class:`~wyre.Connection`)."""

    def receive(self, data: str | bytes) -> None:
        """One complete message arrived."""

    def connection_lost(self, code: int, reason: str) -> None:
        """The socket is closed; called exactly once."""


class Listener(Protocol):
    """A listening socket, as :class:`~wyre.Server` needs it."""

    @property
    def port(self) -> int:
        """The bound port."""

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections are left alone."""

    async def wait_closed(self) -> None:
        """Wait until the listening socket is closed."""

"""The contract between a server's hub and the engine that joins the nodes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["Backplane"]


class Backplane(Protocol):
    """A shared engine that makes servers a cluster (:class:`~wyre.RedisBackplane` ships).

    It carries envelopes between nodes (one channel per node, one for
    broadcasts) and keeps the shared records: the live nodes, which node
    holds each connection, and the members of each group. It has no rules
    of its own: the :class:`~wyre.hub.Hub` decides what envelopes mean.

    Announcements (:meth:`opened`, :meth:`closed`, :meth:`joined`,
    :meth:`left`) never fail for an outage: the backplane re-announces the
    hub's whole state (:meth:`Hub.snapshot <wyre.hub.Hub.snapshot>`) when it is
    back. Queries and publishing fail fast with :class:`~wyre.BackplaneError`
    while it is unreachable.
    """

    max_envelope_size: int
    """Largest envelope it carries; a larger message fails with LimitExceeded."""

    @property
    def available(self) -> bool:
        """Whether the engine is reachable right now."""

    async def start(self, hub: Hub) -> None:
        """Connect, subscribe to ``hub.node_id``'s channel, announce the node, keep it alive.

        Raises:
            BackplaneError: the engine cannot be reached.
        """

    async def stop(self) -> None:
        """Remove this node's records and disconnect (bounded)."""

    async def publish(self, node: str | None, data: bytes) -> int:
        """Send an envelope to one node (None: every node's broadcast channel).

        Envelopes must arrive in the order of the calls (a request's partials
        and its reply are published one after another, without waiting).
        Returns how many subscribers got it: 0 when nobody listens on that
        channel (the node is dead, or reconnecting).
        """

    async def locate(self, connection_id: str) -> str | None:
        """The live node holding a connection, or None."""

    async def presence(self, group: str | None) -> dict[str, str]:
        """``{connection id: node id}`` on live nodes, of ``group`` or all."""

    async def nodes(self) -> list[str]:
        """The live nodes."""

    def opened(self, connection_id: str) -> None:
        """A connection opened on this node."""

    def closed(self, connection_id: str, groups: Iterable[str]) -> None:
        """A connection closed on this node; it was a member of ``groups``."""

    async def joined(self, group: str, connection_id: str) -> None:
        """A connection of this node joined ``group`` (returns once recorded)."""

    async def left(self, group: str, connection_id: str) -> None:
        """A connection of this node left ``group``."""

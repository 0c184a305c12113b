"""What an endpoint counts about its traffic: :meth:`Server.stats() <wyre.Server.stats>`.

The counts are kept all the time, so that a server can be watched without
being restarted in a special mode; they must therefore cost next to nothing
where every frame passes. Each :class:`~wyre.Connection` keeps its own frame
and byte counts in plain integer slots, incremented where the frame already
passes (``Connection.receive`` and ``Connection._write``): per connection
rather than per endpoint, because that is one attribute look-up less per
frame. They are summed only when :meth:`~wyre.Server.stats` is called; a
connection that closes adds its counts to its endpoint's :class:`Counters`
first, so the totals never go down. Everything rarer (a connection opening
or closing, a handler that raised, a timeout, a bad frame) is counted in the
endpoint's :class:`Counters` directly; the requests in flight are read from
the open connections' sessions when asked.

:func:`prometheus_collector` exposes the same numbers to Prometheus
(the ``pywyre[prometheus]`` extra).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from .connection import Connection
    from .endpoint import Endpoint

__all__ = ["Counters", "PrometheusCollector", "Stats", "prometheus_collector"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """A snapshot of an endpoint's counts, from :meth:`Endpoint.stats <wyre.Server.stats>`.

    Totals count from the endpoint's creation and include connections that
    have closed; ``connections_open``, ``pending_requests`` and
    ``open_requests`` are the state at the time of the call.

    A *frame* is one WebSocket message that carries a wyre message: the
    requests, replies, partials, errors and messages, and the ``wyre.v2``
    ACK and CANCEL frames. WebSocket control frames (ping, pong, close) are
    not counted. *Bytes* are the length of each frame's payload as wyre
    handles it, before the transport adds WebSocket framing or compression:
    for a payload handled as bytes (what the orjson and MessagePack codecs
    write, every binary frame received) its bytes; for one handled as text
    (what the standard library codec writes, every text frame received) its
    characters, which are its UTF-8 bytes as long as the text is ASCII and
    fewer otherwise. That length is what costs nothing to take, and it is
    the same on every transport; the bytes on the wire would have to be
    counted by the driver.
    """

    connections_open: int
    """Connections open now."""
    connections_opened: int
    """Connections that completed their opening handshake."""
    connections_closed: Mapping[int, int]
    """Connections that closed, by close code (1006: lost without a closing handshake)."""
    frames_received: int
    """Frames received from peers (see the class docstring for what a frame is)."""
    frames_sent: int
    """Frames handed to the transport for sending."""
    bytes_received: int
    """Payload length of the frames received (see the class docstring)."""
    bytes_sent: int
    """Payload length of the frames sent."""
    pending_requests: int
    """Requests this endpoint sent that wait for their reply now (in flight outwards)."""
    open_requests: int
    """Requests from peers that are not answered yet (in flight inwards: being handled)."""
    handler_errors: int
    """Times the application's code raised: a handler of any event, a callback, or the
    ``authenticate`` hook (each is also logged or given to the ``error`` event)."""
    requests_timed_out: int
    """Requests and acknowledged sends of this endpoint that got no answer in time
    (each failed with :class:`~wyre.RequestTimeout`)."""
    bad_frames: int
    """Frames the protocol refused (undecodable, not an object, an unknown direction or
    key...). Frames that break the WebSocket rules close the connection instead, and
    show in ``connections_closed`` (1002, 1007, 1009)."""
    handshakes_refused: Mapping[int, int]
    """On a server, opening handshakes refused, by HTTP status: by the admission rules
    (``origins``, connection limits, ``authenticate``; 503 while shutting down) and
    malformed upgrade requests. Always empty on a client."""

    @property
    def connections_closed_total(self) -> int:
        """Connections that closed, whatever their close code."""
        return sum(self.connections_closed.values())

    @property
    def handshakes_refused_total(self) -> int:
        """Opening handshakes refused, whatever their status."""
        return sum(self.handshakes_refused.values())


class Counters:
    """An endpoint's running counts, behind :class:`Stats` (see the module docstring).

    Plain integer attributes, incremented where the event happens; the
    frame and byte counts of open connections are kept by each connection
    and added here when it closes (:meth:`retire`).

    A snapshot may be taken from another thread (a metrics server's), so a
    closing connection's counts move from it to the totals under a lock that
    the snapshot holds too: counted twice or not at all, a counter would
    seem to go down, which Prometheus takes for a restart.
    """

    __slots__ = (
        "_lock",
        "bad_frames",
        "bytes_received",
        "bytes_sent",
        "closed",
        "frames_received",
        "frames_sent",
        "handler_errors",
        "opened",
        "timed_out",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.opened = 0
        self.closed: dict[int, int] = {}
        self.handler_errors = 0
        self.timed_out = 0
        self.bad_frames = 0
        # The traffic of the connections that closed.
        self.frames_received = 0
        self.frames_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0

    def retire(self, connection: Connection, connections: dict[str, Connection]) -> bool:
        """``connection`` closed: take it out of ``connections`` and keep its counts here.

        Its close code is counted, and its traffic added to the totals.
        Returns False (and counts nothing) when it was not in ``connections``.
        """
        with self._lock:
            if connections.pop(connection.id, None) is None:
                return False
            code = connection.close_code if connection.close_code is not None else 1006
            self.closed[code] = self.closed.get(code, 0) + 1
            self.frames_received += connection._frames_received
            self.frames_sent += connection._frames_sent
            self.bytes_received += connection._bytes_received
            self.bytes_sent += connection._bytes_sent
        return True

    def snapshot(
        self, connections: Iterable[Connection], refused: Mapping[int, int] | None = None
    ) -> Stats:
        """The :class:`Stats` of these counts and the endpoint's open ``connections``.

        May run in another thread than the event loop's: each number is
        exact and no total ever goes down, though they are not all read at
        the same instant.
        """
        with self._lock:
            connections = tuple(connections)
            frames_received, frames_sent = self.frames_received, self.frames_sent
            bytes_received, bytes_sent = self.bytes_received, self.bytes_sent
            closed = dict(self.closed)
            pending = open_ = 0
            for c in connections:
                frames_received += c._frames_received
                frames_sent += c._frames_sent
                bytes_received += c._bytes_received
                bytes_sent += c._bytes_sent
                pending += c._session.pending_requests
                open_ += c._session.open_requests
        return Stats(
            connections_open=len(connections),
            connections_opened=self.opened,
            connections_closed=closed,
            frames_received=frames_received,
            frames_sent=frames_sent,
            bytes_received=bytes_received,
            bytes_sent=bytes_sent,
            pending_requests=pending,
            open_requests=open_,
            handler_errors=self.handler_errors,
            requests_timed_out=self.timed_out,
            bad_frames=self.bad_frames,
            handshakes_refused=dict(refused or {}),
        )


# -- Prometheus -------------------------------------------------------------------

_GAUGE, _COUNTER = "gauge", "counter"

_METRICS = (
    # (Stats field, metric name after the prefix, kind, help)
    ("connections_open", "connections_open", _GAUGE, "Connections open now."),
    ("connections_opened", "connections_opened", _COUNTER, "Connections opened."),
    ("frames_received", "frames_received", _COUNTER, "wyre frames received."),
    ("frames_sent", "frames_sent", _COUNTER, "wyre frames sent."),
    ("bytes_received", "received_bytes", _COUNTER, "Payload length of the frames received."),
    ("bytes_sent", "sent_bytes", _COUNTER, "Payload length of the frames sent."),
    ("pending_requests", "pending_requests", _GAUGE, "Requests sent, waiting for their reply."),
    ("open_requests", "open_requests", _GAUGE, "Requests received, not answered yet."),
    ("handler_errors", "handler_errors", _COUNTER, "Times application handlers or hooks raised."),
    ("requests_timed_out", "requests_timed_out", _COUNTER, "Requests and acked sends timed out."),
    ("bad_frames", "bad_frames", _COUNTER, "Frames refused by the protocol."),
)
"""The single-valued metrics."""

_LABELLED = (
    # (Stats field, metric name after the prefix, label, help)
    ("connections_closed", "connections_closed", "code", "Connections closed, by close code."),
    ("handshakes_refused", "handshakes_refused", "status", "Handshakes refused, by HTTP status."),
)
"""The counters with one sample per close code or HTTP status."""


class PrometheusCollector:
    """A ``prometheus_client`` custom collector for one endpoint: see :func:`prometheus_collector`.

    It calls the endpoint's ``stats()`` at each scrape, so it costs nothing
    between scrapes.
    """

    def __init__(self, endpoint: Endpoint, prefix: str, labels: Mapping[str, str]) -> None:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        self.endpoint = endpoint
        self._prefix = prefix
        self._labels = dict(labels)
        self._kinds: dict[str, Any] = {_GAUGE: GaugeMetricFamily, _COUNTER: CounterMetricFamily}

    def collect(self) -> Iterator[Metric]:
        """The endpoint's :class:`Stats` as metric families (the registry calls it)."""
        stats = self.endpoint.stats()
        names, values = list(self._labels), list(self._labels.values())
        for field_name, name, kind, doc in _METRICS:
            metric = self._kinds[kind](f"{self._prefix}_{name}", doc, labels=names)
            metric.add_metric(values, getattr(stats, field_name))
            yield metric
        for field_name, name, label, doc in _LABELLED:
            metric = self._kinds[_COUNTER](f"{self._prefix}_{name}", doc, labels=[*names, label])
            for key, count in sorted(getattr(stats, field_name).items()):
                metric.add_metric([*values, str(key)], count)
            yield metric

    def describe(self) -> Iterator[Metric]:
        """The metric families :meth:`collect` yields (lets a registry refuse duplicate names)."""
        return self.collect()


def prometheus_collector(
    endpoint: Endpoint, *, prefix: str = "wyre", labels: Mapping[str, str] | None = None
) -> PrometheusCollector:
    """A Prometheus collector of ``endpoint``'s :class:`Stats`, to register on a registry.

    ::

        from prometheus_client import REGISTRY, start_http_server
        from wyre.metrics import prometheus_collector

        REGISTRY.register(prometheus_collector(server))
        start_http_server(9100)

    Metric names start with ``prefix``: ``wyre_connections_open``,
    ``wyre_frames_received_total``, ``wyre_received_bytes_total``...;
    counters end in ``_total``, and ``wyre_connections_closed_total`` is
    labelled by ``code``, ``wyre_handshakes_refused_total`` by ``status``.
    ``labels`` are added to every sample, to tell several endpoints of one
    process apart (``labels={"server": "chat"}``). The collector may be
    scraped from another thread (``start_http_server`` serves from one).

    Raises:
        ImportError: ``prometheus_client`` is not installed
            (``pip install 'pywyre[prometheus]'``).
    """
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "wyre's Prometheus metrics need prometheus_client: pip install 'pywyre[prometheus]'"
        ) from exc
    return PrometheusCollector(endpoint, prefix, labels or {})

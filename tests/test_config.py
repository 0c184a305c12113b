"""Options: the original's log levels, validation of limits, flags accepted."""

from __future__ import annotations

import logging
import sys

import pytest

import wyre
from wyre.config import SILLY, log_level

from .conftest import Link


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("none", logging.CRITICAL + 10),
        ("error", logging.ERROR),
        ("warn", logging.WARNING),
        ("info", logging.INFO),
        ("debug", logging.DEBUG),
        ("silly", SILLY),
        ("DEBUG", logging.DEBUG),
        (0, logging.CRITICAL + 10),
        (1, logging.ERROR),
        (4, logging.DEBUG),
        (5, SILLY),
    ],
)
def test_original_log_levels(level: str | int, expected: int) -> None:
    assert log_level(level) == expected


class Records(logging.Handler):
    """Keeps the messages of the records that reach it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_log_level_is_each_endpoints_own() -> None:
    logger = logging.getLogger("wyre.test.levels")
    logger.setLevel(logging.WARNING)
    records = Records()
    logger.addHandler(records)
    try:
        loud = wyre.Client(log_level="debug", logger=logger)
        quiet = wyre.Server(log_level="none", logger=logger)  # made last: must not silence `loud`
        assert logger.level == logging.WARNING  # the shared logger is left alone
        loud.reporter.log.debug("from the client")
        quiet.reporter.log.log(logging.ERROR, "from the server")
        plain = wyre.Server(logger=logger)  # no log_level: the logger's own level decides
        plain.reporter.log.debug("filtered")
        plain.reporter.log.log(logging.WARNING, "passed")
    finally:
        logger.removeHandler(records)
    assert records.messages == ["from the client", "passed"]


def test_peer_provoked_log_lines_are_rate_limited() -> None:
    from wyre.reporting import LOG_BURST

    logger = logging.getLogger("wyre.test.burst")
    records = Records()
    logger.addHandler(records)
    try:
        log = wyre.Server(log_level="info", logger=logger).reporter.log
        for n in range(LOG_BURST * 10):
            log.log(logging.WARNING, "bad frame %d", n, kind="bad frame")
        log.log(logging.WARNING, "another kind", kind="other")
    finally:
        logger.removeHandler(records)
    assert records.messages == [f"bad frame {n}" for n in range(LOG_BURST)] + ["another kind"]


@pytest.mark.parametrize(
    "options",
    [
        {"log_level": "loud"},
        {"log_level": 9},
        {"transport": "carrier-pigeon"},
        {"max_pending_requests": 0},
        {"max_running_handlers": 0},
        {"max_queued_handlers": 0},
        {"max_buffered_partials": 0},
        {"max_bad_frames": 0},
        {"write_limit": 0},
        {"request_timeout": -1},
        {"request_timeout": 0},
        {"open_timeout": float("nan")},
        {"ping_interval": -5},
        {"shutdown_grace": -1},
    ],
)
def test_invalid_options_raise_value_error(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        wyre.Server(**options)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        wyre.Client(request_timout=3)


def test_unknown_event_and_types_on_untyped_events_are_refused() -> None:
    server = wyre.Server()
    with pytest.raises(ValueError):
        server.on("reqest", lambda ctx: None)
    with pytest.raises(ValueError):
        server.on("close", "chat", lambda *args: None)
    with pytest.raises(ValueError):
        server.on("connection", 5)


def test_a_handler_that_is_not_callable_is_refused() -> None:
    server = wyre.Server()
    with pytest.raises(TypeError):
        server.on("request", "x", "oops")  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        server.on("request", "x", None)  # type: ignore[call-overload]


def test_off_removes_a_handler_and_a_second_on_replaces_it() -> None:
    server = wyre.Server()
    server.on("request", "x", lambda ctx: 1)
    server.on("request", "x", lambda ctx: 2)
    assert server.router.find_request("x")(None) == 2  # type: ignore[misc]
    server.off("request", "x")
    server.off("request", "x")  # nothing left: no error
    assert server.router.find_request("x") is None


async def test_misspelt_flags_and_options_are_refused(link: Link) -> None:
    link.handler.on("request", lambda ctx: {})
    with pytest.raises(TypeError):
        link.conn.request({}, timout=0.01)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        link.conn.send({}, akc=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        link.conn.send({}, {"binray": True})
    with pytest.raises(TypeError):
        link.conn.request({}, {"timeout": 1})
    assert link.conn.pending_requests == 0  # nothing was sent
    await link.conn.request({})  # and the connection is fine


async def test_binary_compress_and_mask_flags(link: Link) -> None:
    """binary sends a binary frame (decoded alike); compress and mask are accepted."""
    seen: list[object] = []
    link.handler.on("request", "echo", lambda ctx: {"got": ctx.message["n"]})
    link.handler.on("message", lambda ctx: seen.append(ctx.message["n"]))
    reply = await link.conn.request({"type": "echo", "n": 1}, {"binary": True})
    assert reply.message["got"] == 1
    reply = await link.conn.request({"type": "echo", "n": 2}, compress=True, mask=True)
    assert reply.message["got"] == 2
    await link.conn.send({"n": 3}, binary=True, compress=False, ack=True)
    assert seen == [3]


def test_orjson_without_orjson_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'pywyre\[fast\]'"):
        wyre.Server(codec="orjson")
    assert wyre.Server().envelope.codec.name == "json"  # the default falls back quietly


def test_an_unknown_transport_name_and_a_driver_object() -> None:
    with pytest.raises(ValueError, match="websockets"):
        wyre.Server(transport="carrier-pigeon")  # type: ignore[arg-type]
    from wyre.transports import driver

    websockets_driver = driver("websockets")
    assert driver(websockets_driver) is websockets_driver
    assert wyre.Client(transport=websockets_driver).options.transport is websockets_driver

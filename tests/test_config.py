"""Options: the original's log levels, validation of limits, flags accepted."""

from __future__ import annotations

import logging

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


def test_log_level_option_sets_the_logger_level() -> None:
    logger = logging.getLogger("wyre.test.levels")
    wyre.Server(log_level="warn", logger=logger)
    assert logger.level == logging.WARNING
    wyre.Client(log_level=4, logger=logger)
    assert logger.level == logging.DEBUG


@pytest.mark.parametrize(
    "options",
    [
        {"log_level": "loud"},
        {"log_level": 9},
        {"transport": "carrier-pigeon"},
        {"max_pending_requests": 0},
        {"max_running_handlers": 0},
        {"write_limit": 0},
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

"""Reading the direction field: case-insensitive, absent means MESSAGE."""

from __future__ import annotations

import pytest

from wyre.protocol import Direction, parse_direction, route_key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, Direction.MESSAGE),
        ("REQUEST", Direction.REQUEST),
        ("request", Direction.REQUEST),
        ("Reply", Direction.REPLY),
        ("error", Direction.ERROR),
        ("PARTIAL", Direction.PARTIAL),
        ("message", Direction.MESSAGE),
        ("ack", Direction.ACK),
        ("CANCEL", Direction.CANCEL),
    ],
)
def test_known_directions_in_any_case(raw: object, expected: Direction) -> None:
    assert parse_direction(raw) is expected


@pytest.mark.parametrize("raw", ["RESUEST", "", 5, ["REQUEST"], {"d": 1}, True])
def test_anything_else_is_not_a_direction(raw: object) -> None:
    assert parse_direction(raw) is None


def test_directions_are_written_upper_case() -> None:
    assert [d.value for d in Direction] == [d.value.upper() for d in Direction]


@pytest.mark.parametrize(
    ("a", "b"), [(5, "5"), (5.0, "5"), ("chat", "chat"), (2.5, "2.5"), (True, "true")]
)
def test_numbers_and_strings_route_alike(a: object, b: object) -> None:
    assert route_key(a) == route_key(b)


def test_different_types_route_apart() -> None:
    assert route_key(5) != route_key(6)
    assert route_key(None) is None

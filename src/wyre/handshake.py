"""Who is connecting: the opening handshake as the server's hooks see it.

A server decides whether to accept a socket before it opens, from the HTTP
upgrade request alone: :class:`Handshake` is that request, the same on every
transport (websockets, picows, ASGI). The decision itself (origins, limits,
the ``authenticate`` hook) is made in :mod:`wyre.admission`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import overload
from urllib.parse import parse_qsl

__all__ = ["Handshake", "MultiMap", "parse_cookies"]


class MultiMap(Mapping[str, str]):
    """A read-only mapping that keeps every value of a repeated key.

    ``m[key]`` is the first value (what a single-valued reader expects),
    :meth:`getall` every value in order; ``len()`` and iteration count
    distinct keys. With ``fold_case`` keys compare case-insensitively, as
    HTTP header names do, and are reported in lower case.
    """

    __slots__ = ("_fold", "_items", "_values")

    def __init__(self, items: Iterable[tuple[str, str]] = (), *, fold_case: bool = False) -> None:
        self._fold = fold_case
        self._items = tuple((k.lower() if fold_case else k, v) for k, v in items)
        values: dict[str, list[str]] = {}
        for key, value in self._items:
            values.setdefault(key, []).append(value)
        self._values = values

    def __getitem__(self, key: str) -> str:
        return self._values[key.lower() if self._fold else key][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return (key.lower() if self._fold else key) in self._values

    @overload
    def getall(self, key: str) -> list[str]: ...
    @overload
    def getall(self, key: str, default: list[str]) -> list[str]: ...

    def getall(self, key: str, default: list[str] | None = None) -> list[str]:
        """Every value of ``key``, in the order received (``default`` or ``[]`` when absent)."""
        found = self._values.get(key.lower() if self._fold else key)
        if found is None:
            return [] if default is None else default
        return list(found)

    def items_all(self) -> tuple[tuple[str, str], ...]:
        """Every (key, value) pair in the order received, repeats included."""
        return self._items

    def __repr__(self) -> str:
        return f"MultiMap({list(self._items)!r})"


def parse_cookies(values: Iterable[str]) -> dict[str, str]:
    """The cookies of ``Cookie`` header values (RFC 6265 5.4); the first of a repeated name wins.

    Lenient like browsers and web frameworks: a part without ``=`` is
    skipped, and double quotes around a value are removed.
    """
    cookies: dict[str, str] = {}
    for value in values:
        for part in value.split(";"):
            name, sep, content = part.partition("=")
            name = name.strip()
            if not sep or not name:
                continue
            content = content.strip()
            if len(content) >= 2 and content[0] == content[-1] == '"':
                content = content[1:-1]
            cookies.setdefault(name, content)
    return cookies


class Handshake:
    """The HTTP upgrade request of a connection, as ``authenticate`` and handlers see it.

    Attributes:
        path: the request path, without the query string (``"/chat"``).
        query: the query string's parameters; repeated keys are kept
            (``query["room"]``, ``query.getall("tag")``).
        headers: the request headers, case-insensitive (``headers["Authorization"]``).
        cookies: the cookies of the ``Cookie`` header(s), by name.
        remote_address: the peer's ``(host, port)``, or None when unknown
            (behind a proxy this is the proxy: see ``docs/deployment.md``).
        subprotocols: the subprotocols the client offered, in its order.
    """

    __slots__ = ("cookies", "headers", "path", "query", "remote_address", "subprotocols")

    def __init__(
        self,
        *,
        path: str,
        query_string: str = "",
        headers: Iterable[tuple[str, str]] = (),
        remote_address: tuple[str, int] | None = None,
    ) -> None:
        self.path = path
        self.query = MultiMap(parse_qsl(query_string, keep_blank_values=True))
        self.headers = MultiMap(headers, fold_case=True)
        self.cookies = parse_cookies(self.headers.getall("cookie"))
        self.remote_address = remote_address
        self.subprotocols = tuple(
            p.strip()
            for value in self.headers.getall("sec-websocket-protocol")
            for p in value.split(",")
            if p.strip()
        )

    @property
    def origin(self) -> str | None:
        """The ``Origin`` header (sent by browsers), or None."""
        return self.headers.get("origin")

    def __repr__(self) -> str:
        return f"<Handshake {self.path} from {self.remote_address}>"

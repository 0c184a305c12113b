"""Glue between :class:`~wyre.Connection` and WebSocket libraries.

Each module implements :class:`~wyre.transport.Transport` for one library and
offers ``listen(server, host, port)`` and ``connect(client, url, protocols)``.
``websockets`` is the default; ``picows`` is optional (the ``fast`` extra).
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

__all__ = ["load"]


def load(name: str) -> ModuleType:
    """The driver module for a transport name (``websockets`` or ``picows``).

    Raises:
        ImportError: the library behind it is not installed, naming the extra.
    """
    try:
        return import_module(f"{__name__}.{name}_driver")
    except ImportError as exc:
        raise ImportError(
            f"the {name!r} transport needs the {name} package: pip install 'pywyre[fast]'"
        ) from exc

"""The drivers that ship with wyre, and how a name finds its driver.

Each driver implements :class:`~wyre.transport.Driver` for one WebSocket
library: ``websockets`` (the default, :mod:`.websockets_driver`) and
``picows`` (the ``fast`` extra, :mod:`.picows_driver`). ``transport=`` takes
one of these names, a name given to :func:`register`, or any object
implementing the contract. (Serving through an ASGI server is not a driver:
see :meth:`Server.asgi() <wyre.Server.asgi>` and :mod:`.asgi`.)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..transport import Driver

__all__ = ["DRIVERS", "driver", "known", "register"]

DRIVERS: dict[str, tuple[str, str, str]] = {
    "websockets": ("websockets_driver", "WebsocketsDriver", "websockets"),
    "picows": ("picows_driver", "PicowsDriver", "picows"),
}
"""Driver name -> (module in this package, class, the library it needs)."""

_REGISTERED: dict[str, Driver] = {}


def register(name: str, made: Driver) -> None:
    """Make ``made`` the driver of ``transport=name``, for every Server and Client.

    A name lets configuration pick a driver (an options file, an environment
    variable, a test parameter) where passing the object itself is awkward.
    Registering a name again replaces its driver.

    Raises:
        ValueError: ``name`` is one of the drivers that ship (:data:`DRIVERS`).
    """
    if name in DRIVERS:
        raise ValueError(f"{name!r} is a driver wyre ships: register under another name")
    _REGISTERED[name] = made


def known(name: str) -> bool:
    """Whether ``transport=name`` names a driver (one that ships, or a registered one)."""
    return name in DRIVERS or name in _REGISTERED


def driver(transport: str | Driver) -> Driver:
    """The driver for ``transport``: a name (:data:`DRIVERS` or registered), or a driver object.

    Raises:
        ValueError: an unknown name.
        ImportError: the library behind the driver is not installed (naming
            the extra to install); any other import failure propagates as is.
    """
    if not isinstance(transport, str):
        return transport
    registered = _REGISTERED.get(transport)
    if registered is not None:
        return registered
    try:
        module_name, class_name, library = DRIVERS[transport]
    except KeyError:
        raise ValueError(f"unknown transport {transport!r}: {_choices()}") from None
    try:
        module = import_module(f"{__name__}.{module_name}")
    except ImportError as exc:
        if exc.name != library:
            raise
        raise ImportError(
            f"the {transport!r} transport needs the {library} package: pip install 'pywyre[fast]'",
            name=library,
        ) from exc
    made: Driver = getattr(module, class_name)()
    return made


def _choices() -> str:
    names = [*DRIVERS, *_REGISTERED]
    return f"use {', '.join(names[:-1])} or {names[-1]}, or a driver object"

"""The drivers that ship with wyre, and how a name finds its driver.

Each driver implements :class:`~wyre.transport.Driver` for one WebSocket
library: ``websockets`` (the default, :mod:`.websockets_driver`) and
``picows`` (the ``fast`` extra, :mod:`.picows_driver`). ``transport=`` takes
one of these names or any object implementing the contract.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..transport import Driver

__all__ = ["DRIVERS", "driver"]

DRIVERS: dict[str, tuple[str, str, str]] = {
    "websockets": ("websockets_driver", "WebsocketsDriver", "websockets"),
    "picows": ("picows_driver", "PicowsDriver", "picows"),
}
"""Driver name -> (module in this package, class, the library it needs)."""


def driver(transport: str | Driver) -> Driver:
    """The driver for ``transport``: a name from :data:`DRIVERS`, or a driver object.

    Raises:
        ValueError: an unknown name.
        ImportError: the library behind the driver is not installed (naming
            the extra to install); any other import failure propagates as is.
    """
    if not isinstance(transport, str):
        return transport
    try:
        module_name, class_name, library = DRIVERS[transport]
    except KeyError:
        raise ValueError(
            f"unknown transport {transport!r}: use {' or '.join(DRIVERS)}, or a driver object"
        ) from None
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

"""The JavaScript client: ``wyre.js``, an ES module for browsers and Node.js.

It ships inside the package (``wyre/static/wyre.js``, with its TypeScript
declarations ``wyre.d.ts`` beside it). A web framework can serve the file at
:func:`client_script`; a :class:`~wyre.Server` given ``client_script="/wyre.js"``
serves it itself, on its WebSocket port. ``docs/browser.md`` describes its API.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
from importlib import resources
from pathlib import Path

__all__ = ["client_script", "client_script_body"]

_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


@functools.cache
def client_script() -> Path:
    """The path of ``wyre.js``, the JavaScript client module (its ``.d.ts`` lies beside it).

    From an installed package this is the file itself; from a zipped one, a
    copy extracted for the life of the process.
    """
    resource = resources.files("wyre").joinpath("static", "wyre.js")
    if isinstance(resource, Path):
        return resource
    return _extracted.enter_context(resources.as_file(resource))


@functools.cache
def client_script_body() -> tuple[bytes, str]:
    """The module's bytes and their ETag (a quoted digest), read once."""
    body = client_script().read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

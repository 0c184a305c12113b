"""The ``wyre`` command: serve an application, and talk to any wyre server from a shell.

::

    wyre serve app:server --port 8765 --workers 4 --backplane redis://127.0.0.1:6379/0
    wyre request ws://127.0.0.1:8765 '{"type": "add", "a": 2, "b": 3}'
    wyre send ws://127.0.0.1:8765 '{"type": "chat", "text": "hi"}' --ack
    wyre listen ws://127.0.0.1:8765
    wyre connect ws://127.0.0.1:8765

Also ``python -m wyre ...``. Output meant for programs (JSON lines) goes to
stdout, diagnostics to stderr. Exit statuses: :data:`OK` (0), :data:`ERROR_REPLY`
(1), :data:`USAGE` (2), :data:`UNREACHABLE` (3), :data:`TIMED_OUT` (4).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from .shell import ERROR_REPLY, OK, TIMED_OUT, UNREACHABLE, USAGE, UsageError, fail

__all__ = ["ERROR_REPLY", "OK", "TIMED_OUT", "UNREACHABLE", "USAGE", "main"]

_EPILOG = """\
exit status: 0 success, 1 the server answered with an ERROR, 2 usage error or bad JSON,
3 cannot connect or the connection closed, 4 timeout.
"""


def parser() -> argparse.ArgumentParser:
    """The command line's grammar (every subcommand has ``--help`` with examples)."""
    main_parser = argparse.ArgumentParser(
        prog="wyre",
        description="Serve a wyre application, or talk to a wyre server from a shell.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    main_parser.add_argument("--version", action="version", version=f"wyre {__version__}")
    commands = main_parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from . import serve, shell

    serve.add_parser(commands)
    shell.add_parsers(commands)
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit status."""
    args = parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except UsageError as exc:
        fail(str(exc))
        return USAGE
    except KeyboardInterrupt:
        return OK
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``python -m wyre``: the ``wyre`` command (see :mod:`wyre.cli`)."""

import sys

from .cli import main

sys.exit(main())

"""Backplanes: the engines that join servers into a cluster (see ``docs/cluster.md``).

:class:`Backplane` is the contract; :class:`~wyre.backplane.redis.RedisBackplane`
(the ``redis`` extra) the engine that ships. The envelope that crosses it is
in :mod:`wyre.backplane.envelope`.
"""

from .base import Backplane

__all__ = ["Backplane"]

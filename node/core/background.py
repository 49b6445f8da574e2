"""Work nobody waits for: its failure must still be reported, never lost in silence."""
from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import Logger


def in_background(d: Deferred, what: str, log: Logger) -> Deferred:
    """Let ``d`` run on without a waiter; a failure is logged to ``log`` as "could not
    <what>" (an unhandled error in a Deferred would otherwise surface only when it is
    garbage-collected, if at all)."""
    return d.addErrback(lambda failure: log.failure("could not " + what, failure))

"""What fulfilment adapters raise; kept apart so adapters need not import the record service."""

from __future__ import annotations


class FulfilmentFailed(Exception):
    """A definite refusal: the record goes to Failed with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientFulfilmentError(Exception):
    """The fulfilment could not be completed now (a system was down or slow); the record
    stays Issuing and the attempt is retried — it is never turned into a failure."""

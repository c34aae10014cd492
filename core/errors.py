"""The SCIZOR error hierarchy.

One root, :class:`ScizorError`, and narrow subclasses chosen by what the caller can do
about the failure. Foreign exceptions (SQLAlchemy, pyarrow, ib_async, ...) are translated
once, at the boundary where they arise (``raise StorageError(...) from exc``). ``serve/``
maps these classes to HTTP status codes in one place.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[ScizorError], args: tuple[Any, ...], state: dict[str, Any]) -> ScizorError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class ScizorError(Exception):
    """Root of every error SCIZOR raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other constructor arguments (code, field, ...); rebuild from state so
        # every error crosses a process boundary (Ray tasks and actors) intact.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigError(ScizorError):
    """A setting is missing or invalid; the message names the variable and the fix."""


class ValidationError(ScizorError, ValueError):
    """Input was rejected; nothing was written.

    Also a ``ValueError``, so code written against the standard library's convention for bad
    values (``except ValueError``) keeps catching it.

    Attributes:
        field: The name of the offending field (or row/rule), when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DataError(ValidationError):
    """Market data broke a rule (e.g. high below low); the batch was not written."""


class ParameterError(ValidationError):
    """A strategy or indicator parameter is unknown or out of range."""


class NotFound(ScizorError):
    """The named thing does not exist."""


class Conflict(ScizorError):
    """The request clashes with existing state (duplicate key, wrong status, ...)."""


class StorageError(ScizorError):
    """The database or the bar store failed for a reason other than bad input."""


class BrokerError(ScizorError):
    """The broker (IBKR or ibsim) answered with an error.

    Attributes:
        code: The TWS API error code (e.g. 200, 162, 321).
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"IB error {code}: {message}")
        self.code = code
        self.broker_message = message


class PacingViolation(BrokerError):
    """IBKR refused a historical-data request for breaking its pacing rules (error 162)."""

    def __init__(self, message: str = "Historical data request pacing violation") -> None:
        super().__init__(162, message)


class NotConnected(BrokerError):
    """The gateway has no live connection to the broker right now."""

    def __init__(self, message: str = "not connected to the IB gateway") -> None:
        super().__init__(504, message)


class OrderRejected(ScizorError):
    """The broker or the order manager refused an order."""


class RiskRejected(OrderRejected):
    """The risk manager refused an order; the message names the limit that was hit."""

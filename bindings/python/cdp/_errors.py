"""Exceptions raised by the cdp package.

Every error libcdp reports is a :class:`cdp.Error`; the subclass says which ``cdp::StatusCode`` it carries.
``InvalidArgument`` is also a :class:`ValueError` and ``NotFound`` also a :class:`LookupError`, so generic
``except ValueError`` / ``except LookupError`` handlers catch them too.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "Error",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "FailedPrecondition",
    "ResourceExhausted",
    "DataLoss",
    "Unavailable",
    "Internal",
    "Unauthenticated",
]


class Error(Exception):
    """Base class of every libcdp error.

    Attributes:
        code: the stable snake_case status code, e.g. ``"invalid_argument"``.
        message: the human-readable message, without the code.
        field: the path of the offending input field (``"timestamp"``, ``"[3].properties.revenue"``), or None.
    """

    code: str = "unknown"

    def __init__(self, message: str = "", *, code: Optional[str] = None, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field or None

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        if self.field:
            text += f" (field: {self.field})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, field={self.field!r})"

    def __reduce__(self):  # picklable, keyword-only arguments included
        return (_from_status, (self.code, self.message, self.field))


class InvalidArgument(Error, ValueError):
    """The input is malformed or breaks a rule; ``field`` names where."""

    code = "invalid_argument"


class NotFound(Error, LookupError):
    """The named profile (or database, with ``create_if_missing=False``) does not exist."""

    code = "not_found"


class AlreadyExists(Error):
    """A write collided with an existing id or identifier; ``field`` names which."""

    code = "already_exists"


class PermissionDenied(Error):
    """The caller may not do this."""

    code = "permission_denied"


class FailedPrecondition(Error):
    """The system is not in a state where this works, e.g. the database is already open or was closed."""

    code = "failed_precondition"


class ResourceExhausted(Error):
    """A size limit was exceeded (event, batch, profile)."""

    code = "resource_exhausted"


class DataLoss(Error):
    """Stored data is corrupt or of an unknown format version."""

    code = "data_loss"


class Unavailable(Error):
    """A transient failure; retrying may work."""

    code = "unavailable"


class Internal(Error):
    """A bug or an unexpected storage error."""

    code = "internal"


class Unauthenticated(Error):
    """Missing or invalid credentials (used by the server; listed for completeness)."""

    code = "unauthenticated"


_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        FailedPrecondition,
        ResourceExhausted,
        DataLoss,
        Unavailable,
        Internal,
        Unauthenticated,
    )
}


def _from_status(code: str, message: str, field: Optional[str] = None) -> Error:
    """The exception for a cdp::Status (called by the extension module, with the GIL held)."""
    cls = _BY_CODE.get(code, Error)
    return cls(message, code=code, field=field)

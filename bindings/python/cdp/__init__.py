"""cdp: Python bindings of libcdp, an embeddable Customer Data Platform over RocksDB.

    import cdp

    with cdp.open("/tmp/shop-cdp") as db:
        ada = db.profiles.create({"attributes": {"email": "ada@example.com", "country": "GB"}})
        db.events.track({"type": "purchase", "email": "ada@example.com", "properties": {"revenue": 42}})
        print(db.profiles.get(ada["id"])["computed"]["ltv"])           # 42
        page = db.events.query(type="purchase", since="2026-01-01")
        frame = page.to_pandas()

Documents are dicts with libcdp's field names (camelCase, see docs/data-model.md); timestamps come back as ISO 8601
UTC strings. Errors are subclasses of cdp.Error carrying .code and .field. See docs/python.md.
"""

from __future__ import annotations

from ._errors import (
    AlreadyExists,
    DataLoss,
    Error,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from . import _core
from ._convert import iso_utc
from ._database import Database, Events, Profiles, default_options, open
from ._page import Page, to_pandas

__version__: str = _core.__version__
FORMAT_VERSION: int = _core.FORMAT_VERSION


def parse_timestamp(value) -> int:
    """Microseconds since the Unix epoch of a timestamp as libcdp reads it: an ISO 8601 string, epoch
    milliseconds (int) or a datetime / date (naive = UTC). Raises InvalidArgument when it is not one."""
    from . import _convert

    return _core.parse_timestamp(_convert.dumps(_convert.timestamp_value(value, "timestamp"), "timestamp"))


class principal:  # noqa: N801 - a context manager, named as the call reads
    """Runs this thread's calls for a principal of the governance policy while the block runs::

        with cdp.principal("ann"):
            db.profiles.get(pid)   # without the fields ann may not read

    Outside any block calls run as ``"local"`` (an admin). Blocks nest; enter and exit on one thread.
    ``cdp.principal.current()`` names the principal in force."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError("the principal's name must be a str")
        self._scope = _core.PrincipalScope(name)

    def __enter__(self) -> "principal":
        self._scope.enter()
        return self

    def __exit__(self, *exc_info) -> None:
        self._scope.exit()

    @staticmethod
    def current() -> str:
        return _core.PrincipalScope.current()


def format_timestamp(micros: int) -> str:
    """libcdp's ISO 8601 UTC text of microseconds since the Unix epoch ("2026-11-27T10:00:00.000Z")."""
    return _core.format_timestamp(micros)


__all__ = [
    "open",
    "principal",
    "Database",
    "Profiles",
    "Events",
    "Page",
    "to_pandas",
    "default_options",
    "parse_timestamp",
    "format_timestamp",
    "iso_utc",
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
    "__version__",
    "FORMAT_VERSION",
]

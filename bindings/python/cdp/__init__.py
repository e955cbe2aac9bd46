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
from ._page import Page, Rows, to_pandas
from ._principal import principal

__version__: str = _core.__version__
FORMAT_VERSION: int = _core.FORMAT_VERSION


def parse_timestamp(value) -> int:
    """Microseconds since the Unix epoch of a timestamp as libcdp reads it: an ISO 8601 string, epoch
    milliseconds (int) or a datetime / date (naive = UTC). Raises InvalidArgument when it is not one."""
    from . import _convert

    return _core.parse_timestamp(_convert.dumps(_convert.timestamp_value(value, "timestamp"), "timestamp"))


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
    "Rows",
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

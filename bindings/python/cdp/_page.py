"""Pages of query results and their pandas conversion."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional

# Document fields that hold timestamps (ISO 8601 text); to_pandas turns them into datetime64[ns, UTC] columns.
TIMESTAMP_FIELDS = frozenset(
    {
        "timestamp",
        "receivedAt",
        "createdAt",
        "updatedAt",
        "start",
        "end",
        "computed.lastPurchaseDate",
        "computed.firstSeenDate",
        "computed.lastSeenDate",
        "consent.updatedAt",
    }
)


# The fields every document of a kind has, in document order: the columns of an empty page's frame. Nested objects
# are flattened into their always-present leaves (computed.*); those whose members vary (attributes, properties,
# externalIds, ...) are columns only when not flattened.
_COLUMNS = {
    "events": {
        True: ("id", "profileId", "type", "name", "timestamp", "receivedAt", "sessionId", "deviceId", "source"),
        False: ("id", "profileId", "type", "name", "timestamp", "receivedAt", "sessionId", "deviceId", "source",
                "properties"),
    },
    "profiles": {
        True: ("id", "segments", "identityIssues", "conflicts", "mergedIds", "createdAt", "updatedAt", "computed.ltv",
               "computed.aov", "computed.purchaseCount", "computed.lastPurchaseDate", "computed.firstSeenDate",
               "computed.lastSeenDate", "computed.eventCount", "computed.churnRisk", "computed.engagementScore"),
        False: ("id", "externalIds", "attributes", "computed", "consent", "segments", "identityIssues", "conflicts",
                "mergedIds", "attributeSources", "createdAt", "updatedAt"),
    },
}


def _import_pandas(what: str = "to_pandas()"):
    try:
        import pandas  # noqa: F401  (imported lazily: pandas is an optional dependency)
    except ImportError as e:
        raise ImportError(
            f"{what} needs pandas, which is not installed. Install it (e.g. `apt install python3-pandas` or "
            "`pip install pandas`) and try again."
        ) from e
    return pandas


def _to_datetime(pd, column):
    try:
        return pd.to_datetime(column, utc=True, format="ISO8601")  # pandas >= 2.0: mixed ISO precisions
    except (TypeError, ValueError):
        return pd.to_datetime(column, utc=True)


def to_pandas(items: Iterable[Dict[str, Any]], *, flatten: bool = True, parse_dates: bool = True,
              kind: Optional[str] = None):
    """A pandas DataFrame of documents (profiles, events, sessions), one row per document.

    flatten: nested objects become dotted columns (``properties.revenue``, ``attributes.email``) via
        ``pandas.json_normalize``; when False the top-level fields are the columns and nested objects stay dicts.
    parse_dates: known timestamp fields (timestamp, receivedAt, createdAt, updatedAt, computed.lastPurchaseDate,
        ...) become ``datetime64[ns, UTC]`` columns; otherwise they stay ISO 8601 strings.
    kind: "events" or "profiles": what the documents are. With no documents, the frame then has the columns every
        document of that kind has (id, type, timestamp, ... for events; id, createdAt, computed.ltv, ... for
        profiles), so code selecting them works on an empty result; with no kind it has no columns.
    """
    pd = _import_pandas()
    rows = list(items)
    if not rows:
        columns = _COLUMNS[kind][bool(flatten)] if kind is not None else ()
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    elif flatten:
        frame = pd.json_normalize(rows)
    else:
        frame = pd.DataFrame.from_records(rows)
    if parse_dates:
        for column in frame.columns:
            if column in TIMESTAMP_FIELDS:
                frame[column] = _to_datetime(pd, frame[column])
    return frame


class Rows(list):
    """A list of documents (dicts), as a call that returns them whole gives them (``profiles.sessions``): a plain
    list in every way, with ``to_pandas()`` besides."""

    __slots__ = ()

    def to_pandas(self, *, flatten: bool = True, parse_dates: bool = True):
        """These documents as a pandas DataFrame (see cdp.to_pandas). Raises ImportError when pandas is missing."""
        return to_pandas(self, flatten=flatten, parse_dates=parse_dates)


class Page:
    """One page of a query or search: iterate it for its items (dicts).

    Attributes:
        items: the documents of this page, as dicts.
        next_cursor: pass it as ``cursor=`` to get the next page; None on the last page.
    """

    __slots__ = ("items", "next_cursor", "_fetch_next", "_kind")

    def __init__(self, items: List[Dict[str, Any]], next_cursor: Optional[str], fetch_next=None,
                 kind: Optional[str] = None) -> None:
        self.items = items
        self.next_cursor = next_cursor or None
        self._fetch_next = fetch_next
        self._kind = kind  # "events" or "profiles": an empty page's frame has that kind's columns

    @property
    def has_more(self) -> bool:
        """Whether more items follow this page."""
        return self.next_cursor is not None

    def next_page(self) -> Optional["Page"]:
        """The following page (the same query with ``cursor=next_cursor``), or None on the last page."""
        if self.next_cursor is None or self._fetch_next is None:
            return None
        return self._fetch_next(self.next_cursor)

    def pages(self) -> Iterator["Page"]:
        """This page and every following one."""
        page: Optional[Page] = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __repr__(self) -> str:
        return f"Page({len(self.items)} items, next_cursor={self.next_cursor!r})"

    def to_pandas(self, *, flatten: bool = True, parse_dates: bool = True):
        """This page as a pandas DataFrame (see cdp.to_pandas). An empty page of events or profiles has the columns
        every event or profile has. Raises ImportError when pandas is missing."""
        return to_pandas(self.items, flatten=flatten, parse_dates=parse_dates, kind=self._kind)

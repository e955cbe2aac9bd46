"""Conversions between Python values and the JSON text the extension module speaks."""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import math
import os
import sys
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from ._errors import InvalidArgument

TimestampLike = Union[_dt.datetime, _dt.date, str, int]


def iso_utc(value: Union[_dt.datetime, _dt.date]) -> str:
    """ISO 8601 text of a datetime, in UTC with millisecond precision (microseconds when non-zero).

    Naive datetimes are taken to be UTC. A date becomes ``YYYY-MM-DD`` (midnight UTC).
    """
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(_dt.timezone.utc)
        value = value.replace(tzinfo=None)
        # Written field by field: strftime's %Y does not pad years before 1000 ("1-01-01"), which is no ISO 8601.
        text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
                f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.")
        if value.microsecond % 1000:
            return text + f"{value.microsecond:06d}Z"
        return text + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, _dt.date):
        return value.isoformat()
    raise TypeError(f"expected a datetime or date, not {type(value).__name__}")


def _default(value: Any) -> Any:
    """json.dumps fallback: datetimes, dates, Decimals, numpy scalars and other iterables."""
    if isinstance(value, (_dt.datetime, _dt.date)):
        return iso_utc(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():  # NaN, sNaN, infinities: no JSON form (dumps names the field)
            raise ValueError(f"{value} is not a finite number")
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)  # numpy / pandas scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any, what: str = "document") -> bytes:
    """Compact JSON text of `value`, UTF-8 encoded, for the extension module.

    Non-ASCII text stays UTF-8 (not \\u escapes), so byte limits such as max_batch_bytes count what libcdp stores.
    Raises cdp.InvalidArgument for NaN / infinity (not representable in JSON) and for strings that are not valid
    Unicode (lone surrogates), and TypeError for values that have no JSON form.
    """
    try:
        text = json.dumps(value, default=_default, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError as e:  # NaN, inf, an integer of more digits than Python writes, circular references
        bad = _too_many_digits if "Exceeds the limit" in str(e) else _not_finite
        raise InvalidArgument(f"{what} is not representable as JSON: {e}", field=_path_of(value, bad)) from None
    except RecursionError:  # nested past Python's recursion limit
        raise InvalidArgument(f"{what} is nested too deeply to convert to JSON (past Python's recursion limit; "
                              f"field: the first level past libcdp's default limit of {_DEEP})",
                              field=_too_deep(value, _DEEP)) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument(f"{what} contains a string that is not valid Unicode: {e.reason}",
                              field=_path_of(value, _not_unicode)) from None


def _not_finite(v: Any) -> bool:
    """NaN or an infinity (float or Decimal): no JSON form."""
    if isinstance(v, decimal.Decimal):
        return not v.is_finite()
    return isinstance(v, float) and not math.isfinite(v)


def _too_many_digits(v: Any) -> bool:
    """An integer (int, or integral Decimal) with more digits than Python converts to text
    (sys.get_int_max_str_digits()): json.dumps cannot write it."""
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if not limit:
        return False
    if isinstance(v, decimal.Decimal):
        return v.is_finite() and v == v.to_integral_value() and v != 0 and v.adjusted() + 1 > limit
    return isinstance(v, int) and not isinstance(v, bool) and v != 0 and abs(v).bit_length() > limit * 3.32


def _key_text(key: Any) -> str:
    """A key as a field path names it; an integer key too long to write as text is described."""
    try:
        return str(key)
    except ValueError:
        return f"<integer of {key.bit_length()} bits>"


_DEEP = 64  # libcdp's default max_json_depth: the level named when a document is too deep to convert at all


def _member_path(path: str, key: Any) -> str:
    """The field path of member `key` of the object at `path`, as libcdp names fields."""
    return f"{path}.{_key_text(key)}" if path else _key_text(key)


def _too_deep(value: Any, limit: int) -> Optional[str]:
    """The path of the first container nested deeper than `limit` levels (the top is level 1), as libcdp names
    fields; walked without recursion."""
    stack = [(value, "", 1)]
    while stack:
        node, path, level = stack.pop()
        if isinstance(node, Mapping):
            if level > limit:
                return path or None
            children = [(member, _member_path(path, key)) for key, member in node.items()]
        elif isinstance(node, (list, tuple, set, frozenset)):
            if level > limit:
                return path or None
            children = [(item, f"{path}[{i}]") for i, item in enumerate(node)]
        else:
            continue
        stack.extend((child, where, level + 1) for child, where in reversed(children))
    return None


def _not_unicode(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _path_of(value: Any, bad, path: str = "", depth: int = 0) -> Optional[str]:
    """The path ("properties.revenue", "[3].name") of the first value or key below `value` for which bad() holds,
    as libcdp names fields; None when there is none (or it is deeper than 100 levels: a circular reference)."""
    if depth > 100:
        return None
    if isinstance(value, Mapping):
        for key, member in value.items():
            where = _member_path(path, key)
            if bad(key):
                return where
            found = bad(member) and where or _path_of(member, bad, where, depth + 1)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            found = bad(item) and where or _path_of(item, bad, where, depth + 1)
            if found:
                return found
    return None


def loads(text: str) -> Any:
    return json.loads(text)


def require_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict, not {type(value).__name__}")
    return value


def timestamp_value(value: Optional[TimestampLike], name: str) -> Union[str, int, None]:
    """since / until: datetime or date -> ISO 8601 UTC text; str as is; int as epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a datetime, an ISO 8601 string or epoch milliseconds, not bool")
    if isinstance(value, (_dt.datetime, _dt.date)):
        return iso_utc(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    item = getattr(value, "item", None)  # numpy integer
    if callable(item) and isinstance(item(), int):
        return item()
    raise TypeError(
        f"{name} must be a datetime, an ISO 8601 string or epoch milliseconds, not {type(value).__name__}"
    )


def condition(value: Any) -> Any:
    """One condition: a dict passes through (nested groups are normalised too); a (field, op, value) tuple
    becomes {"field", "operator", "value"}."""
    if isinstance(value, tuple):
        if len(value) != 3:
            raise TypeError(f"a condition tuple must be (field, operator, value), got {len(value)} items")
        field, op, val = value
        return {"field": field, "operator": op, "value": val}
    if isinstance(value, Mapping):
        if "conditions" in value and "field" not in value:
            group = dict(value)
            group["conditions"] = conditions(value["conditions"])
            return group
        return dict(value)
    return value  # let libcdp say what is wrong with it


def conditions(value: Union[None, Sequence[Any], Iterable[Any]]) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError("conditions must be a list of conditions")
    return [condition(c) for c in value]


def filter_value(value: Any) -> Any:
    """`where=`: a filter in its JSON form ({"operator", "conditions"}), a single condition dict, or a list of
    conditions (dicts or (field, operator, value) tuples), combined with AND."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if "conditions" in value:
            return condition(value)
        return [condition(value)]
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[0], str) and isinstance(value[1], str):
        return [condition(value)]
    return conditions(value)

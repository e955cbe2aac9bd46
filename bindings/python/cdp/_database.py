"""cdp.open() and the Database, Profiles and Events objects."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import _convert
from . import _core
from ._core import Engine as _Engine
from ._core import SegmentIngester as _SegmentIngester
from ._errors import InvalidArgument
from ._convert import TimestampLike
from ._page import Page, Rows, _import_pandas, _to_datetime


def _time_text(value: Union[str, TimestampLike], name: str) -> str:
    """A time for calls that take text: a datetime or date as ISO 8601 UTC, epoch milliseconds formatted by
    libcdp, text (a time or a cursor) as it is."""
    if value is None:
        raise TypeError(f"{name} must be a datetime, an ISO 8601 string or epoch milliseconds, not None")
    value = _convert.timestamp_value(value, name)
    return value if isinstance(value, str) else _core.format_timestamp(value * 1000)


PathLike = Union[str, "os.PathLike[str]"]
Document = Dict[str, Any]

_ORDERS = ("asc", "desc")


def _order(order: str) -> str:
    if order not in _ORDERS:
        raise InvalidArgument(f"order must be 'asc' or 'desc', not {order!r}", field="order")
    return order


def _event_query(
    *,
    profile_id=None,
    type=None,
    name=None,
    source=None,
    since=None,
    until=None,
    where=None,
    order="asc",
    limit=100,
    cursor=None,
) -> Dict[str, Any]:
    """The JSON form of cdp::EventQuery (see EventQuery::FromJson)."""
    query: Dict[str, Any] = {}
    if profile_id is not None:
        query["profileId"] = profile_id
    if type is not None:
        query["type"] = type
    if name is not None:
        query["name"] = name
    if source is not None:
        query["source"] = source
    if since is not None:
        query["since"] = _convert.timestamp_value(since, "since")
    if until is not None:
        query["until"] = _convert.timestamp_value(until, "until")
    if where is not None:
        query["where"] = _convert.filter_value(where)
    query["order"] = _order(order)
    if limit is not None:
        query["limit"] = limit
    if cursor:
        query["cursor"] = cursor
    return query


def _all_items(first: Page) -> Iterator[Document]:
    for page in first.pages():
        yield from page.items


class Profiles:
    """Profiles: the golden records. Reach it as ``db.profiles``."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def create(self, profile: Mapping[str, Any]) -> Document:
        """Creates a profile and returns the stored document. ``profile["id"]`` is used when given.

        Raises AlreadyExists when the id or one of the identifiers is taken, InvalidArgument for a bad document.
        """
        _convert.require_mapping(profile, "profile")
        return _convert.loads(self._engine.profiles_create(_convert.dumps(profile, "profile")))

    def create_batch(self, profiles: Sequence[Mapping[str, Any]]) -> Document:
        """Creates many profiles (a bulk import) in one atomic write, in order.

        Each item is checked as :meth:`create` checks it, against the database and the items before it; a bad item
        is reported in its result, not raised, and writes nothing. Items never merge (an identifier already taken
        is ``already_exists``; ``db.identity.identify_batch`` unifies instead). Returns ``{"accepted", "rejected",
        "results": [{"index", "status": "ok", "id"} | {"index", "status", "error": {"code", "message", "field"}}]}``.
        Raises InvalidArgument over the batch limits (``max_batch_items``, 10,000 by default; ``max_batch_bytes``).
        """
        if isinstance(profiles, (str, bytes, Mapping)):
            raise TypeError("profiles must be a sequence of mappings")
        return _convert.loads(self._engine.profiles_create_batch(_convert.dumps(list(profiles), "profiles")))

    def get(self, id: str) -> Document:
        """The current document with computed traits. Raises NotFound when absent."""
        return _convert.loads(self._engine.profiles_get(id))

    def update(self, id: str, profile: Mapping[str, Any]) -> Document:
        """Replaces the writable fields (externalIds, attributes, consent, computed.churnRisk/engagementScore);
        writable fields absent from `profile` become empty. Keeps id, createdAt, computed traits and segments."""
        _convert.require_mapping(profile, "profile")
        return _convert.loads(self._engine.profiles_replace(id, _convert.dumps(profile, "profile")))

    replace = update

    def patch(self, id: str, patch: Mapping[str, Any]) -> Document:
        """Applies an RFC 7396 JSON merge patch: members set, None members delete, other members are untouched."""
        _convert.require_mapping(patch, "patch")
        return _convert.loads(self._engine.profiles_patch(id, _convert.dumps(patch, "patch")))

    def delete(self, id: str) -> None:
        """Deletes the profile with its identifiers, events and traits. Raises NotFound when absent."""
        self._engine.profiles_delete(id)

    def search(
        self,
        conditions: Union[None, Sequence[Any], Mapping[str, Any]] = None,
        operator: str = "AND",
        sort: Optional[str] = None,
        order: str = "asc",
        limit: int = 50,
        cursor: Optional[str] = None,
    ) -> Page:
        """One page of the profiles matching `conditions`, combined with `operator` ("AND" / "OR").

        conditions: a list of condition dicts ``{"field", "operator", "value"}``, ``(field, operator, value)``
            tuples or nested groups ``{"operator": "OR", "conditions": [...]}``; or a whole filter dict. None or []
            matches every profile.
        sort: field path to sort by (e.g. "computed.ltv"); None sorts by id. order: "asc" or "desc".
        """
        if isinstance(conditions, Mapping):
            group = _convert.condition(conditions)
            if "conditions" in group and "field" not in group:
                conds = group["conditions"]
                operator = group.get("operator", operator)
            else:
                conds = [group]
        else:
            conds = _convert.conditions(conditions)
        query: Dict[str, Any] = {"conditions": conds, "operator": operator, "order": _order(order)}
        if sort:
            query["sort"] = sort
        if limit is not None:
            query["limit"] = limit
        if cursor:
            query["cursor"] = cursor

        def fetch(next_cursor: str) -> Page:
            return self._search(dict(query, cursor=next_cursor), fetch)

        return self._search(query, fetch)

    def _search(self, query: Dict[str, Any], fetch) -> Page:
        result = _convert.loads(self._engine.profiles_search(_convert.dumps(query, "query")))
        return Page(result["items"], result.get("nextCursor"), fetch, kind="profiles")

    def search_all(self, conditions=None, operator: str = "AND", sort=None, order: str = "asc", page_size: int = 500):
        """A generator over every matching profile, following cursors page by page."""
        return _all_items(self.search(conditions, operator, sort, order, page_size))

    def timeline(
        self,
        id: str,
        *,
        type=None,
        name=None,
        source=None,
        since=None,
        until=None,
        where=None,
        order: str = "asc",
        limit: int = 100,
        cursor: Optional[str] = None,
    ) -> Page:
        """One page of the profile's events by event time; filters as in ``db.events.query``.
        Raises NotFound when the profile is absent."""
        query = _event_query(
            type=type, name=name, source=source, since=since, until=until, where=where, order=order, limit=limit,
            cursor=cursor,
        )

        def fetch(next_cursor: str) -> Page:
            return self._timeline(id, dict(query, cursor=next_cursor), fetch)

        return self._timeline(id, query, fetch)

    def _timeline(self, id: str, query: Dict[str, Any], fetch) -> Page:
        result = _convert.loads(self._engine.profiles_timeline(id, _convert.dumps(query, "query")))
        return Page(result["items"], result.get("nextCursor"), fetch, kind="events")

    def timeline_all(self, id: str, *, page_size: int = 500, **filters) -> Iterator[Document]:
        """A generator over all of the profile's matching events, following cursors."""
        filters.pop("cursor", None)
        return _all_items(self.timeline(id, limit=page_size, **filters))

    def sessions(self, id: str) -> Rows:
        """The profile's sessions, oldest first: a list with ``to_pandas()``. Raises NotFound when the profile is
        absent."""
        return Rows(_convert.loads(self._engine.profiles_sessions(id)))


class Events:
    """Events: the behavioural log. Reach it as ``db.events``."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def track(self, event: Mapping[str, Any]) -> Document:
        """Stores one event and updates its profile's computed traits.

        Returns ``{"eventId", "profileId", "sessionId", "profileCreated", "duplicate"}``. A datetime in
        ``event["timestamp"]`` is sent as ISO 8601 UTC.
        """
        _convert.require_mapping(event, "event")
        return _convert.loads(self._engine.events_track(_convert.dumps(event, "event")))

    def track_batch(self, events: Union[Sequence[Mapping[str, Any]], Mapping[str, Any]]) -> Document:
        """Stores every valid event of `events` in one atomic write; says per item what happened.

        Returns ``{"accepted", "rejected", "results": [{"index", "status": "ok" | code, "eventId", ... |
        "error": {...}}]}``. Raises only when the batch as a whole is unacceptable (InvalidArgument when over
        max_batch_bytes / max_batch_items). `events` may also be Segment's ``{"batch": [...]}`` shape.
        """
        if isinstance(events, (str, bytes)):
            raise TypeError("events must be a list of dicts")
        if not isinstance(events, Mapping):
            events = list(events)
        return _convert.loads(self._engine.events_track_batch(_convert.dumps(events, "batch")))

    def query(
        self,
        profile_id: Optional[str] = None,
        type: Optional[str] = None,
        name: Optional[str] = None,
        source: Optional[str] = None,
        since=None,
        until=None,
        where=None,
        order: str = "asc",
        limit: int = 100,
        cursor: Optional[str] = None,
    ) -> Page:
        """One page of the events matching every given filter, by event time.

        since / until: datetime (naive = UTC), date, ISO 8601 string or epoch milliseconds; since is inclusive,
            until exclusive.
        where: conditions on the event document, e.g. ``[("properties.plan", "=", "pro")]``.
        """
        query = _event_query(
            profile_id=profile_id, type=type, name=name, source=source, since=since, until=until, where=where,
            order=order, limit=limit, cursor=cursor,
        )

        def fetch(next_cursor: str) -> Page:
            return self._query(dict(query, cursor=next_cursor), fetch)

        return self._query(query, fetch)

    def _query(self, query: Dict[str, Any], fetch) -> Page:
        result = _convert.loads(self._engine.events_query(_convert.dumps(query, "query")))
        return Page(result["items"], result.get("nextCursor"), fetch, kind="events")

    def query_all(self, *, page_size: int = 500, **filters) -> Iterator[Document]:
        """A generator over every matching event (filters as in query), following cursors page by page."""
        filters.pop("cursor", None)
        return _all_items(self.query(limit=page_size, **filters))


class Identity:
    """Identity resolution: rules, merges and explanations. Reach it as ``db.identity``. See docs/identity.md."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def rules(self) -> Document:
        """The identity rules in force: ``{"identifiers": [...], "blocked": [...], "hub": {...}}``."""
        return _convert.loads(self._engine.identity_rules())

    def set_rules(self, rules: Mapping[str, Any]) -> Document:
        """Validates and stores new rules (raises InvalidArgument naming the bad field); returns them."""
        _convert.require_mapping(rules, "rules")
        return _convert.loads(self._engine.identity_set_rules(_convert.dumps(rules, "rules")))

    def dry_run_rules(self, rules: Mapping[str, Any]) -> Document:
        """What ``rules`` would merge, block, unlink or make a hub on the existing graph; changes nothing."""
        _convert.require_mapping(rules, "rules")
        return _convert.loads(self._engine.identity_dry_run_rules(_convert.dumps(rules, "rules")))

    def apply_rules(self, rules: Mapping[str, Any]) -> Document:
        """Stores ``rules`` and applies them to the existing graph (what ``dry_run_rules`` reports is done):
        re-keys renormalized values, unlinks invalid, blocked or over-limit ones, merges profiles whose values
        became one. Returns ``{"rules", "renormalized", "merged", "mergeBlocked", "unlinked", "newHubs", ...}``."""
        _convert.require_mapping(rules, "rules")
        return _convert.loads(self._engine.identity_apply_rules(_convert.dumps(rules, "rules")))

    def merge(self, profile_ids: Sequence[str], reason: str = "") -> Document:
        """Merges the profiles into the first; returns ``{"mergeId", "profileId", "merged"}``.

        Raises InvalidArgument (fewer than two distinct profiles), NotFound, FailedPrecondition (a limit would break).
        """
        if isinstance(profile_ids, str) or not all(isinstance(p, str) for p in profile_ids):
            raise TypeError("profile_ids must be a sequence of profile id strings")
        return _convert.loads(self._engine.identity_merge(list(profile_ids), reason))

    def unmerge(self, profile_id: str, merge_id: str) -> Document:
        """Undoes a merge: ``{"mergeId", "profileId", "restored", "eventsMoved"}`` (see Identity::Unmerge).

        Raises NotFound, InvalidArgument (the merge does not involve the profile), FailedPrecondition (already undone,
        or a later merge must be undone first).
        """
        return _convert.loads(self._engine.identity_unmerge(profile_id, merge_id))

    def identify(self, identifiers: Mapping[str, str], *, attributes=None, consent=None, computed=None,
                 profile_id: Optional[str] = None, id: Optional[str] = None, source: Optional[str] = None,
                 timestamp: Optional[TimestampLike] = None) -> Document:
        """Names a person and sets what is known about them (Segment's identify).

        ``identifiers`` maps types (``userId``/``customerId``, ``email``, ``anonymousId``, ...) to values; they resolve
        a profile like an event's identifiers (creating or merging profiles as the rules say). ``attributes``,
        ``consent`` and ``computed`` are a merge patch applied to it. ``source`` and ``timestamp`` (a datetime, date,
        ISO 8601 text or epoch milliseconds; default now) are the provenance of the values it sets, which
        survivorship by source priority or recency reads. Returns ``{"identifyId", "profileId", "profileCreated",
        ...}``.
        """
        request: Dict[str, Any] = {"identifiers": dict(identifiers)}
        if timestamp is not None:
            timestamp = _convert.timestamp_value(timestamp, "timestamp")
        for key, value in (("attributes", attributes), ("consent", consent), ("computed", computed),
                           ("profileId", profile_id), ("id", id), ("source", source), ("timestamp", timestamp)):
            if value is not None:
                request[key] = value
        return _convert.loads(self._engine.identity_identify(_convert.dumps(request, "identify")))

    def identify_batch(self, requests: Sequence[Mapping[str, Any]]) -> Document:
        """Many identifies (a bulk import) in one atomic write: each request is ``{"identifiers", "attributes", ...}``.

        Returns ``{"accepted", "rejected", "results"}``; a bad item is reported in its result, not raised.
        """
        return _convert.loads(self._engine.identity_identify_batch(_convert.dumps(list(requests), "requests")))

    def explain(self, id: str) -> Document:
        """Identifiers with the evidence of each link, identity issues, merged ids and merge history."""
        return _convert.loads(self._engine.identity_explain(id))

    def matching_config(self) -> Document:
        """The fuzzy-matching configuration: ``{"linkage": {...}, "proposeAbove", "autoMergeAbove"}``."""
        return _convert.loads(self._engine.identity_matching_config())

    def set_matching_config(self, config: Mapping[str, Any]) -> Document:
        """Validates (InvalidArgument with ``.field``) and stores the fuzzy-matching configuration."""
        _convert.require_mapping(config, "config")
        return _convert.loads(self._engine.identity_set_matching_config(_convert.dumps(config, "config")))

    def find_duplicates(self) -> Document:
        """Scores likely duplicate profiles and records proposals (and merges above ``autoMergeAbove`` when set)."""
        return _convert.loads(self._engine.identity_find_duplicates())

    def match_pending(self) -> Document:
        """Matches now the profiles written since the matcher last ran (``onWrite`` in the matching configuration):
        ``{"matched", "proposed", "updated", "autoMerged"}``. The matcher thread does the same in the background."""
        return _convert.loads(self._engine.identity_match_pending())

    def proposals(self, status: Optional[str] = None) -> List[Document]:
        """Proposals, most probable first; ``status`` is pending, accepted, rejected or merged (None: all)."""
        return _convert.loads(self._engine.identity_proposals(status or ""))

    def accept(self, proposal_id: str) -> Document:
        """Merges the proposal's pair; returns the proposal (status accepted, with its mergeId)."""
        return _convert.loads(self._engine.identity_decide(proposal_id, True))

    def reject(self, proposal_id: str) -> Document:
        """Rejects the proposal: the pair is not proposed again."""
        return _convert.loads(self._engine.identity_decide(proposal_id, False))

    def stats(self) -> Document:
        """``{"profiles", "merges", "mergedProfiles", "unmerges", "unificationRate"}``."""
        return _convert.loads(self._engine.identity_stats())


# ---- Segments: rules over profiles and behaviour (include/cdp/engine.h Segments, include/cdp/segment_rule.h) -----


class Segments:
    """Segments: named rules over profiles and their events, exact at every read. Reach it as ``db.segments``
    (``db.segment`` is Segment-spec ingestion).

    A definition is ``{"name", "description"?, "rule"}``; the rule language is in docs/segments.md. Sizes and members
    reflect every write acknowledged before the call. Raises InvalidArgument naming the field
    (``rule.conditions[2].count``), NotFound for an unknown id, FailedPrecondition when deleting a segment another
    segment's rule names.
    """

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def create(self, definition: Mapping[str, Any]) -> Document:
        """Stores a segment; returns it with ``id``, ``createdAt``, ``updatedAt`` and ``size``."""
        _convert.require_mapping(definition, "definition")
        return _convert.loads(self._engine.segments_create(_convert.dumps(definition, "definition")))

    def get(self, id: str) -> Document:
        return _convert.loads(self._engine.segments_get(id))

    def list(self) -> List[Document]:
        return _convert.loads(self._engine.segments_list())

    def update(self, id: str, definition: Mapping[str, Any]) -> Document:
        """Replaces the definition (keeps id and createdAt)."""
        _convert.require_mapping(definition, "definition")
        return _convert.loads(self._engine.segments_update(id, _convert.dumps(definition, "definition")))

    def delete(self, id: str) -> None:
        self._engine.segments_delete(id)

    def size(self, id: str) -> int:
        return _convert.loads(self._engine.segments_size(id))

    def estimate(self, rule: Mapping[str, Any]) -> int:
        """The exact size of an unsaved rule; nothing is stored."""
        _convert.require_mapping(rule, "rule")
        return _convert.loads(self._engine.segments_estimate(_convert.dumps(rule, "rule")))

    def members(self, id: str, limit: int = 50, cursor: Optional[str] = None) -> Page:
        """One page of member profiles; ``page.next_page()`` (or ``members_all``) follows the cursor."""

        def fetch(next_cursor: str) -> Page:
            return self._members(id, limit, next_cursor, fetch)

        return self._members(id, limit, cursor or "", fetch)

    def _members(self, id: str, limit: int, cursor: str, fetch) -> Page:
        result = _convert.loads(self._engine.segments_members(id, limit, cursor))
        return Page(result["items"], result.get("nextCursor"), fetch, kind="profiles")

    def members_all(self, id: str, page_size: int = 500):
        """A generator over every member, following cursors page by page."""
        return _all_items(self.members(id, page_size))

    def add_members(self, id: str, items: Sequence[Any]) -> Document:
        """Adds profiles to a manual segment (``{"name", "type": "manual"}``): each item a profile id or an
        identifier ``{"type": "email", "value": ...}``. Returns ``{"added", "unchanged", "notFound"}``."""
        return _convert.loads(self._engine.segments_change_members(id, _convert.dumps(list(items), "items"), True))

    def remove_members(self, id: str, items: Sequence[Any]) -> Document:
        """Removes profiles from a manual segment; returns ``{"removed", "unchanged", "notFound"}``."""
        return _convert.loads(self._engine.segments_change_members(id, _convert.dumps(list(items), "items"), False))

    def overlap(self, ids: Sequence[str]) -> Document:
        """Pairwise overlap of 1 to 50 segments: ``{"segments": [{"id", "name", "size"}], "matrix": [[{"intersection",
        "union", "jaccard"}]]}``."""
        return _convert.loads(self._engine.segments_overlap(list(ids)))

    def export(self, id: str, format: str = "csv", fields: Optional[Sequence[str]] = None) -> str:
        """The members as CSV (a header of the field paths, then a row each) or JSON lines, with the given dotted
        profile paths (default: id, email, phone, first and last name)."""
        return self._engine.segments_export(id, format, list(fields or []))

    def rfm_config(self) -> Document:
        """``{"event", "revenuePath", "window"}``: what computed.rfm is scored over."""
        return _convert.loads(self._engine.audiences_call("rfm_config", "", "", 0, ""))

    def set_rfm_config(self, config: Mapping[str, Any]) -> Document:
        """Sets any of ``event``, ``revenuePath``, ``window`` ("365d" or None) and re-scores at once."""
        _convert.require_mapping(config, "config")
        return _convert.loads(self._engine.audiences_call("rfm_set_config", "", _convert.dumps(config, "config"),
                                                          0, ""))

    def recompute_rfm(self) -> Document:
        """Re-scores every profile's RFM now: ``{"at", "scored", "changed"}``."""
        return _convert.loads(self._engine.audiences_call("rfm_recompute", "", "", 0, ""))

    def members_at(self, id: str, time: TimestampLike) -> List[str]:
        """The member profile ids as they were at ``time`` (a datetime, a date, RFC 3339 text or epoch
        milliseconds), from the change feed; sorted."""
        return _convert.loads(self._engine.segments_members_at(id, _time_text(time, "time")))

    def changes(self, id: str, since: Union[str, TimestampLike, None] = None, limit: int = 100) -> Document:
        """Membership changes after ``since`` (a cursor, a time as ``members_at`` takes it, or None for the start),
        oldest first: ``{"changes": [{"cursor", "segmentId", "profileId", "change": "entered" | "exited", "time",
        "cause"}], "cursor", "more"}``. Pass the returned ``cursor`` as ``since`` to continue."""
        return _convert.loads(self._engine.segments_changes(id, _time_text(since, "since") if since is not None
                                                            else "", limit))

    def watch(self, id: str, since: Union[str, TimestampLike, None] = None, timeout: Optional[float] = None,
              batch: int = 100) -> Iterator[Document]:
        """An iterator over the segment's membership changes after ``since``, waiting for new ones as they happen.
        It ends after ``timeout`` seconds without a change (None: never). Each change carries its ``cursor``: keep
        the last one to resume after a restart.

            for change in db.segments.watch(seg["id"], since=cursor, timeout=60):
                print(change["change"], change["profileId"])
        """
        cursor = _time_text(since, "since") if since is not None else ""
        idle = 0.0
        while True:
            page = self.changes(id, cursor, batch)
            for change in page["changes"]:
                yield change
            cursor = page["cursor"]
            if page["changes"]:
                idle = 0.0
                continue
            if timeout is not None and idle >= timeout:
                return
            step = 1.0 if timeout is None else max(0.0, min(1.0, timeout - idle))
            found = self._engine.segments_wait(id, cursor, int(step * 1000))
            if not found:
                idle += step


class Consent:
    """Consent per purpose, with its history (``db.consent``). See docs/privacy.md.

    Purposes: ``email``, ``sms``, ``tracking``, ``ads``; Google Consent Mode v2's ``ad_storage``, ``ad_user_data``,
    ``ad_personalization`` (``ads`` is granted exactly when all three are) and ``analytics_storage`` (stored as
    ``tracking``); custom purposes (``[a-z][a-z0-9_]{0,63}``). A profile whose tracking is denied has new events
    refused (FailedPrecondition); audiences with a channel keep only profiles that granted it.
    """

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def record(self, profile_id: Optional[str] = None, *, identifier: Optional[Mapping[str, str]] = None,
               purposes: Optional[Mapping[str, Any]] = None, consent_mode: Optional[Mapping[str, str]] = None,
               source: Optional[str] = None, policy_version: Optional[str] = None, timestamp: Any = None) -> Document:
        """Records a statement of consent for a profile (by id, or by an identifier it holds such as
        ``{"type": "email", "value": ...}``). ``purposes`` maps purposes to ``"granted"`` / ``"denied"`` (or
        booleans); ``consent_mode`` takes Consent Mode v2 signals. A statement older (``timestamp``) than the latest
        one recorded for a purpose is kept in the history and listed in ``"superseded"`` without changing it.
        Returns the consent document (as ``get``) plus ``"recordId"``, ``"applied"`` and ``"superseded"``.

        Raises InvalidArgument naming the field, NotFound when no profile matches.
        """
        request: Dict[str, Any] = {}
        for key, value in (("profileId", profile_id), ("identifier", identifier), ("purposes", purposes),
                           ("consentMode", consent_mode), ("source", source), ("policyVersion", policy_version),
                           ("timestamp", _convert.timestamp_value(timestamp, "timestamp"))):
            if value is not None:
                request[key] = value
        return _convert.loads(self._engine.consent_record(_convert.dumps(request, "request")))

    def get(self, profile_id: str) -> Document:
        """``{"profileId", "purposes": {purpose: {"granted", "at", "source", "policyVersion"?, "via",
        "recordId"}}, "consentMode", "updatedAt", "history": [the last 100 records, oldest first],
        "historyCount"}``. Raises NotFound."""
        return _convert.loads(self._engine.consent_get(profile_id))

    def history_page(self, profile_id: str, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Document:
        """A page of the consent history, oldest recorded first: ``{"profileId", "items", "nextCursor"}``
        (``nextCursor`` is None on the last page; pass it as ``cursor`` for the next). ``limit``: 1 to 1000
        (default 100). Raises InvalidArgument, NotFound."""
        page = {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
        return _convert.loads(self._engine.consent_history(profile_id, _convert.dumps(page, "page")))

    def records(self, profile_id: str) -> Iterator[Document]:
        """Every record of the consent history, oldest recorded first, read a page at a time."""
        cursor = None
        while True:
            page = self.history_page(profile_id, limit=1000, cursor=cursor)
            yield from page["items"]
            cursor = page["nextCursor"]
            if cursor is None:
                return

    def history(self, profile_id: str) -> "pandas.DataFrame":
        """The whole consent history as a pandas DataFrame: one row per purpose stated by a record (columns
        ``recordId``, ``profileId``, ``purpose``, ``granted`` (None: no longer stated), ``at``, ``recordedAt``,
        ``source``, ``policyVersion``, ``via``, ``mergeId``, ``superseded``)."""
        pandas = _import_pandas("consent.history()")
        rows = []
        for record in self.records(profile_id):
            superseded = set(record.get("superseded", []))
            for purpose, granted in record["purposes"].items():
                rows.append({"recordId": record["id"], "profileId": record["profileId"], "purpose": purpose,
                             "granted": granted, "at": pandas.Timestamp(record["at"]),
                             "recordedAt": pandas.Timestamp(record["recordedAt"]), "source": record["source"],
                             "policyVersion": record.get("policyVersion"), "via": record["via"],
                             "mergeId": record.get("mergeId"), "superseded": purpose in superseded})
        columns = ["recordId", "profileId", "purpose", "granted", "at", "recordedAt", "source", "policyVersion",
                   "via", "mergeId", "superseded"]
        return pandas.DataFrame(rows, columns=columns)


class Gdpr:
    """Data subjects' requests (``db.gdpr``): access export, erasure, request records, suppression of erased
    identifiers. See docs/privacy.md."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def export(self, profile_id: str) -> Document:
        """Everything held about the person, as one document: ``{"requestId", "generatedAt", "profileId",
        "profile", "identity", "events", "sessions", "consent", "segments", "audit"}`` (``audit``: the audit entries
        naming the person, for a principal that may read the audit log). The request is recorded. Raises NotFound."""
        return _convert.loads(self._engine.gdpr_export(profile_id))

    def erase(self, profile_id: str) -> Document:
        """Erases the person (physically, before it returns), suppresses their identifiers (unless the database was
        opened with ``suppress_erased_identifiers=False``) and returns the request record. Raises NotFound."""
        return _convert.loads(self._engine.gdpr_erase(profile_id))

    def request(self, request_id: str) -> Document:
        """A request record: ``{"id", "type", "status", "receivedAt", "completedAt", "turnaroundMs", ...}``."""
        return _convert.loads(self._engine.gdpr_request(request_id))

    def requests(self, *, type: Optional[str] = None, status: Optional[str] = None,  # noqa: A002
                 profile_id: Optional[str] = None, limit: Optional[int] = None,
                 cursor: Optional[str] = None) -> Document:
        """Request records, newest first: ``{"items", "nextCursor", "turnaround": {"completed", "p50Ms", "p90Ms",
        "maxMs"}}``; ``profile_id`` finds a person's requests (records hold only a keyed hash of it)."""
        query = {k: v for k, v in (("type", type), ("status", status), ("profileId", profile_id), ("limit", limit),
                                   ("cursor", cursor)) if v is not None}
        return _convert.loads(self._engine.gdpr_requests(_convert.dumps(query, "filter")))

    def is_suppressed(self, type: str, value: str) -> bool:  # noqa: A002
        """Whether an identifier of an erased person is suppressed. Raises InvalidArgument for a bad value."""
        return _convert.loads(self._engine.gdpr_suppression(type, value, False))

    def unsuppress(self, type: str, value: str) -> Document:  # noqa: A002
        """Lets an erased identifier be stored again: ``{"type", "value", "unsuppressed"}``."""
        return _convert.loads(self._engine.gdpr_suppression(type, value, True))


class Audit:
    """The audit log (``db.audit``): one hash-chained entry per call that reads or changes personal data. Calls from
    Python are recorded with the principal of :func:`cdp.principal` (``"local"`` outside any). See docs/privacy.md."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def list(self, *, principal: Optional[str] = None, operation: Optional[str] = None,
             target: Optional[str] = None, resource: Optional[str] = None, since: Any = None, until: Any = None, limit: Optional[int] = None,
             cursor: Optional[int] = None) -> Document:
        """Entries newest first: ``{"items", "nextCursor"}``; ``target`` is a profile id, ``resource`` a segment or
        audience id."""
        query = {k: v for k, v in (("principal", principal), ("operation", operation), ("target", target), ("resource", resource),
                                   ("since", _convert.timestamp_value(since, "since")),
                                   ("until", _convert.timestamp_value(until, "until")), ("limit", limit),
                                   ("cursor", cursor)) if v is not None}
        return _convert.loads(self._engine.audit_list(_convert.dumps(query, "filter")))

    def verify(self) -> Document:
        """Checks the chain: ``{"ok": True, "entries", "redacted", "head"}`` or ``{"ok": False, "brokenAt",
        "reason"}``."""
        return _convert.loads(self._engine.audit_verify())


class Retention:
    """Retention policies (``db.retention``): old events and inactive profiles purged automatically, each run
    recorded. See docs/privacy.md, "Retention"."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def policies(self) -> List[Document]:
        """The policies in force, with their ids."""
        return _convert.loads(self._engine.retention_policies())["policies"]

    def set_policies(self, policies: Sequence[Mapping[str, Any]]) -> List[Document]:
        """Replaces the policies, e.g. ``[{"name": "old views", "target": "events", "eventType": "page_view",
        "olderThan": "365d"}, {"name": "dormant", "target": "profiles", "inactiveFor": "3y"}]``. Needs ``admin``."""
        if isinstance(policies, Mapping):  # the REST shape {"policies": [...]}
            policies = policies.get("policies", [])
        doc = {"policies": list(policies)}
        return _convert.loads(self._engine.retention_set_policies(_convert.dumps(doc, "policies")))["policies"]

    def run(self) -> Document:
        """Applies every enabled policy now; the run's record (``eventsPurged``, ``profilesErased``, per policy)."""
        return _convert.loads(self._engine.retention_run())

    def runs(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Document:
        """Run records, newest first: ``{"items", "nextCursor"}``."""
        query = {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
        return _convert.loads(self._engine.retention_runs(_convert.dumps(query, "filter")))


def _frame(rows: List[Document], as_frame: bool, answer: Document, columns: Sequence[str] = (),
           dates: Sequence[str] = ()) -> Any:
    """The rows as a DataFrame (the answer in ``attrs["answer"]``): with `columns` even when there are no rows, and
    the `dates` columns as ``datetime64[ns, UTC]``."""
    if not as_frame:
        return answer
    pd = _import_pandas("as_frame=True (pass as_frame=False for the JSON answer)")
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(columns))
    for column in dates:
        if column in frame.columns:
            frame[column] = _to_datetime(pd, frame[column])
    frame.attrs["answer"] = answer
    return frame


_FUNNEL_COLUMNS = ("step", "event", "profiles", "conversionFromPrevious", "conversionFromFirst",
                   "medianSecondsFromPrevious")


class Analytics:
    """Funnels, cohort retention and attribution (``db.analytics``), computed from every acknowledged write. See
    docs/analytics.md for the exact semantics. Each method returns a pandas DataFrame (the whole JSON answer in
    ``frame.attrs["answer"]``), or with ``as_frame=False`` the JSON answer as a dict. Timestamps: datetime, date,
    ISO 8601 text or epoch milliseconds; durations: text such as ``"7d"``."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def _run(self, kind: str, request: Mapping[str, Any]) -> Document:
        doc = {k: v for k, v in request.items() if v is not None}
        for key in ("from", "to", "now"):
            if key in doc:
                doc[key] = _convert.timestamp_value(doc[key], key)
        return _convert.loads(self._engine.analytics(kind, _convert.dumps(doc, "request")))

    def funnel(self, steps: Sequence[Any], *, window: Optional[str] = None, since: Optional[TimestampLike] = None,
               until: Optional[TimestampLike] = None, breakdown: Optional[str] = None, as_frame: bool = True) -> Any:
        """Steps are event names or ``{"event", "where"}``; one row per step (``step``, ``event``, ``profiles``,
        ``conversionFromPrevious``, ``conversionFromFirst``, ``medianSecondsFromPrevious``). With a breakdown,
        one row per value and step, with a ``value`` column."""
        request = {"steps": [{"event": s} if isinstance(s, str) else dict(s) for s in steps], "window": window,
                   "from": since, "to": until, "breakdown": breakdown}
        answer = self._run("funnel", request)
        if breakdown is None:
            rows = answer["steps"]
        else:
            rows = [dict(step, value=group["value"]) for group in answer["breakdown"] for step in group["steps"]]
        return _frame(rows, as_frame, answer, _FUNNEL_COLUMNS + (("value",) if breakdown is not None else ()))

    def cohorts(self, *, cohort_event: Optional[str] = None, return_event: Optional[str] = None,
                period: Optional[str] = None, periods: Optional[int] = None, since: Optional[TimestampLike] = None,
                until: Optional[TimestampLike] = None, percentages: bool = False, as_frame: bool = True) -> Any:
        """The retention matrix: one row per cohort (indexed by its start, a UTC datetime), a ``size`` column and
        one column per period (counts, or percentages with ``percentages=True``)."""
        request = {"cohortEvent": cohort_event, "returnEvent": return_event, "period": period, "periods": periods,
                   "from": since, "to": until}
        answer = self._run("cohorts", request)
        key = "percentages" if percentages else "counts"
        rows = [dict({"cohort": c["cohort"], "size": c["size"]}, **{str(k): v for k, v in enumerate(c[key])})
                for c in answer["cohorts"]]
        if not as_frame:
            return answer
        frame = _frame(rows, True, answer, ("cohort", "size"), dates=("cohort",))
        return frame.set_index("cohort")

    def attribution(self, conversion: str, *, model: Optional[str] = None, lookback: Optional[str] = None,
                    half_life: Optional[str] = None, since: Optional[TimestampLike] = None,
                    until: Optional[TimestampLike] = None, as_frame: bool = True) -> Any:
        """Credited conversions and revenue per channel: rows ``source``, ``medium``, ``campaign``,
        ``conversions``, ``revenue``. Models: first_touch, last_touch (default), linear, time_decay,
        position_based, data_driven."""
        request = {"conversion": conversion, "model": model, "lookback": lookback, "halfLife": half_life,
                   "from": since, "to": until}
        answer = self._run("attribution", request)
        return _frame(answer["channels"], as_frame, answer,
                      ("source", "medium", "campaign", "conversions", "revenue"))

    def overview(self, *, now: Optional[TimestampLike] = None) -> Document:
        """Profiles, events by type, active profiles, revenue, segment sizes, ingestion latency, GDPR turnaround and
        the data quality score, as one dict (docs/analytics.md, "Overview")."""
        return self._run("overview", {"now": now})

    def data_quality(self, *, now: Optional[TimestampLike] = None, as_frame: bool = True) -> Any:
        """The data quality checks: rows ``name``, ``description``, ``passed``, ``total``, ``score``; the overall
        score in ``frame.attrs["answer"]["score"]``."""
        answer = self._run("dataQuality", {"now": now})
        return _frame(answer["checks"], as_frame, answer, ("name", "description", "passed", "total", "score"))

    def journeys(self, conversion: str, *, steps: Optional[int] = None, by: Optional[str] = None,
                 lookback: Optional[str] = None, since: Optional[TimestampLike] = None,
                 until: Optional[TimestampLike] = None, limit: Optional[int] = None,
                 collapse_repeats: Optional[bool] = None, as_frame: bool = True) -> Any:
        """The most common paths to a conversion: rows ``path`` (a list of labels), ``conversions``, ``share``;
        the Sankey diagram is in the JSON answer (``frame.attrs["answer"]["sankey"]``)."""
        request = {"conversion": conversion, "steps": steps, "by": by, "lookback": lookback, "from": since,
                   "to": until, "limit": limit, "collapseRepeats": collapse_repeats}
        answer = self._run("journeys", request)
        return _frame(answer["paths"], as_frame, answer, ("path", "conversions", "share"))

    def trends(self, since: TimestampLike, until: TimestampLike, *, interval: Optional[str] = None,
               events: Optional[Sequence[str]] = None, property: Optional[str] = None, weeks: Optional[int] = None,
               threshold: Optional[float] = None, as_frame: bool = True) -> Any:
        """Event volumes per interval with anomaly flags: one row per series and interval (``event``,
        ``value`` with a property, ``at`` (a UTC datetime), ``count``, ``expected``, ``z``, ``anomaly``)."""
        request = {"from": since, "to": until, "interval": interval,
                   "events": list(events) if events is not None else None, "property": property, "weeks": weeks,
                   "threshold": threshold}
        answer = self._run("trends", request)
        rows = [dict({"event": s["event"], **({"value": s["value"]} if "value" in s else {})}, **p)
                for s in answer["series"] for p in s["points"]]
        columns = ("event",) + (("value",) if property is not None else ()) + ("at", "count", "expected", "z",
                                                                                "anomaly")
        return _frame(rows, as_frame, answer, columns, dates=("at",))


class Governance:
    """Who may read and write what (``db.governance``): field classes, roles, principals and API keys. Calls run for
    the principal of :func:`cdp.principal` (``"local"``, an admin, outside any). See docs/privacy.md, "Governance".
    """

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def policy(self) -> Document:
        """The effective policy: ``{"classes", "classification", "roles", "principals"}`` with the defaults."""
        return _convert.loads(self._engine.governance_policy())

    def set_policy(self, policy: Mapping[str, Any]) -> Document:
        """Replaces the policy (absent members take their defaults); returns the effective one. Needs ``admin``."""
        return _convert.loads(self._engine.governance_set_policy(_convert.dumps(policy, "policy")))

    def access(self, principal: str = "") -> Document:
        """What ``principal`` (default: the caller) may do: ``{"principal", "defined", "roles", "admin", "read",
        "write", "readFields", "writeFields", "operations"}``."""
        return _convert.loads(self._engine.governance_access(principal))

    def create_api_key(self, principal: str, description: Optional[str] = None) -> Document:
        """Issues a key for a principal: ``{"id", "key", "principal", "createdAt"}``; the key is shown only here."""
        request: Dict[str, Any] = {"principal": principal}
        if description is not None:
            request["description"] = description
        return _convert.loads(self._engine.governance_create_key(_convert.dumps(request, "request")))

    def api_keys(self) -> List[Document]:
        """The keys, without their secrets."""
        return _convert.loads(self._engine.governance_keys())

    def revoke_api_key(self, key_id: str) -> None:
        """Revokes a key (NotFound when there is none)."""
        self._engine.governance_revoke_key(key_id)

    def authenticate(self, key: str) -> str:
        """The principal a key authenticates; raises :class:`cdp.Unauthenticated` otherwise."""
        return _convert.loads(self._engine.governance_authenticate(key))


class Audiences:
    """Audiences: segments combined for activation (``db.audiences``). A definition is ``{"name", "description"?,
    "segments": {"operator": "AND" | "OR", "ids": [...]}, "exclude"?: [segment ids], "suppressionLists"?: [ids],
    "channel"?: a consent purpose such as "email", "sms", "ads" or a custom one}``; members are the combined segments minus exclusions and suppressed
    identifiers, restricted to profiles whose consent grants the channel. Exact at every call.
    """

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine

    def _call(self, op: str, id: str = "", body: Any = None, limit: int = 0, cursor: str = "") -> Any:
        text = _convert.dumps(body, "body") if body is not None else ""
        return _convert.loads(self._engine.audiences_call(op, id, text, limit, cursor))

    def create(self, definition: Mapping[str, Any]) -> Document:
        _convert.require_mapping(definition, "definition")
        return self._call("create", body=definition)

    def get(self, id: str) -> Document:
        return self._call("get", id)

    def list(self) -> List[Document]:
        return self._call("list")

    def update(self, id: str, definition: Mapping[str, Any]) -> Document:
        _convert.require_mapping(definition, "definition")
        return self._call("update", id, definition)

    def delete(self, id: str) -> None:
        self._call("delete", id)

    def size(self, id: str) -> int:
        return self._call("size", id)

    def members(self, id: str, limit: int = 50, cursor: Optional[str] = None) -> Page:
        """One page of member profiles; ``page.next_page()`` follows the cursor."""

        def fetch(next_cursor: str) -> Page:
            result = self._call("members", id, limit=limit, cursor=next_cursor)
            return Page(result["items"], result.get("nextCursor"), fetch, kind="profiles")

        return fetch(cursor or "")

    def overlap(self, id: str) -> Document:
        """How the audience comes about: its segments' overlap matrix and what exclusions, suppression and consent
        left out."""
        return self._call("overlap", id)

    def export(self, id: str, format: str = "csv", fields: Optional[Sequence[str]] = None) -> str:
        return self._engine.audiences_export(id, format, list(fields or []))

    # Suppression lists: identifiers never to activate.
    def create_suppression_list(self, definition: Mapping[str, Any]) -> Document:
        _convert.require_mapping(definition, "definition")
        return self._call("list_create", body=definition)

    def get_suppression_list(self, id: str) -> Document:
        return self._call("list_get", id)

    def suppression_lists(self) -> List[Document]:
        return self._call("list_list")

    def delete_suppression_list(self, id: str) -> None:
        self._call("list_delete", id)

    def suppress(self, id: str, identifiers: Sequence[Mapping[str, str]]) -> Document:
        """Adds ``{"type", "value"}`` identifiers; returns ``{"added", "unchanged", "invalid"}``."""
        return self._call("list_add", id, list(identifiers))

    def unsuppress(self, id: str, identifiers: Sequence[Mapping[str, str]]) -> Document:
        return self._call("list_remove", id, list(identifiers))


# ---- Segment-spec ingestion (bind_segment.cc, include/cdp/segment.h) --------------------------------------------


class Segment:
    """Segment-spec ingestion: messages of the Segment HTTP Tracking API. Reach it as ``db.segment``.

    ``identify`` and ``alias`` resolve and update profiles (Identity.identify); ``track``, ``page``, ``screen`` and
    ``group`` become events ("Order Completed" a purchase, "Product Viewed" a product view, "Product Added" an
    add-to-cart, page and screen page views). The mapping, the timestamp rule and what deduplication guarantees are in
    docs/identity.md ("Segment-spec ingestion"). MessageIds are remembered for the dedupe window by this object, in
    memory: one per Database, shared by its threads.
    """

    _DEFAULT_WINDOW = 7 * 24 * 3600

    def __init__(self, engine: _Engine, dedupe_window_seconds: int = _DEFAULT_WINDOW) -> None:
        self._engine = engine
        self._ingester = _SegmentIngester(engine, dedupe_window_seconds)

    @property
    def dedupe_window_seconds(self) -> int:
        return self._ingester.dedupe_window_seconds

    def configure(self, *, dedupe_window_seconds: int = _DEFAULT_WINDOW) -> None:
        """Sets the messageId dedupe window (0 turns it off; the engine's own retry rule still applies). Forgets
        the messageIds remembered so far. Raises InvalidArgument (at the next ingest) for a negative window."""
        if isinstance(dedupe_window_seconds, bool) or not isinstance(dedupe_window_seconds, int):
            raise TypeError("dedupe_window_seconds must be an int")
        self._ingester = _SegmentIngester(self._engine, dedupe_window_seconds)

    @staticmethod
    def _received_at(received_at) -> int:
        if received_at is None:
            return _core.segment_now_micros()
        value = _convert.timestamp_value(received_at, "received_at")
        return _core.parse_timestamp(_convert.dumps(value, "received_at"))

    def ingest(self, message: Mapping[str, Any], *, type: Optional[str] = None, received_at=None) -> Document:
        """Ingests one message (its ``type`` says which call it is, or `type` does, as the /v1/<type> routes).

        received_at: when the message was received (datetime, ISO 8601 string or epoch ms; default: now); it
            is the base of the event time when the message has no ``timestamp``.
        Returns ``{"type", "messageId", "duplicate", "profileId", ...}`` plus ``eventId``/``sessionId`` for events
        and ``identifyId`` for identify and alias. Raises InvalidArgument naming the field, or over 32 KiB.
        """
        _convert.require_mapping(message, "message")
        return _convert.loads(self._ingester.ingest(_convert.dumps(message, "message"),
                                                    self._received_at(received_at), type or ""))

    def ingest_batch(self, messages: Union[Sequence[Mapping[str, Any]], Mapping[str, Any]], *,
                     received_at=None) -> Document:
        """Ingests a batch, in order: a list of messages or Segment's ``{"batch": [...], "sentAt", "context"}``.

        Returns ``{"accepted", "rejected", "results": [{"index", "status": "ok" | "duplicate" | code, ...}]}``.
        Raises only when the batch as a whole is unacceptable (InvalidArgument over 500 KiB or when it is not a
        batch).
        """
        if isinstance(messages, (str, bytes)):
            raise TypeError("messages must be a list of dicts or {'batch': [...]}")
        if not isinstance(messages, Mapping):
            messages = list(messages)
        return _convert.loads(self._ingester.ingest_batch(_convert.dumps(messages, "batch"),
                                                          self._received_at(received_at)))


class Database:
    """An open libcdp database. Create it with :func:`cdp.open`; close it with :meth:`close` or a ``with`` block.

    Thread-safe: share one Database between threads; calls release the GIL and run in parallel.
    """

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self.profiles = Profiles(engine)
        self.events = Events(engine)
        self.identity = Identity(engine)
        self.segments = Segments(engine)  # segmentation: rules over profiles and behaviour
        self.audiences = Audiences(engine)  # segments combined for activation
        self.consent = Consent(engine)  # consent per purpose, with its history
        self.gdpr = Gdpr(engine)  # data subjects' requests: export, erasure, suppression
        self.audit = Audit(engine)  # the hash-chained audit log
        self.governance = Governance(engine)  # classes, roles, principals, API keys
        self.retention = Retention(engine)  # old events and inactive profiles purged on a schedule
        self.analytics = Analytics(engine)  # funnels, cohorts, attribution
        self.segment = Segment(engine)  # Segment-spec ingestion

    @property
    def path(self) -> str:
        return self._engine.path

    @property
    def closed(self) -> bool:
        return self._engine.closed

    @property
    def options(self) -> Dict[str, Any]:
        """The options the database was opened with (every cdp::Options field)."""
        return _convert.loads(self._engine.options_json)

    def stats(self) -> Document:
        """``{"profiles", "events", "formatVersion", "path"}``."""
        return _convert.loads(self._engine.stats())

    def flush(self) -> None:
        """Flushes memtables to SST files (not needed for durability)."""
        self._engine.flush()

    def close(self) -> None:
        """Closes the database, waiting for calls in flight in other threads. Idempotent. Later calls raise
        FailedPrecondition."""
        self._engine.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<cdp.Database {self.path!r} ({state})>"


class _CheckedEngine:
    """The native engine, with its string arguments' one failure mapped: a str that is not valid Unicode (a lone
    surrogate, e.g. an id "\\ud800") is cdp.InvalidArgument naming the argument, not pybind11's TypeError about
    incompatible arguments. Other attributes pass through; each method's wrapper is made once."""

    def __init__(self, native: _Engine) -> None:
        self._native = native

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._native, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except TypeError:
                named = [(f"argument {i + 1}", a) for i, a in enumerate(args)] + list(kwargs.items())
                for where, value in named:
                    if _convert._not_unicode(value):
                        raise InvalidArgument(f"{where} of {name.replace('_', '.', 1)} is not valid Unicode "
                                              "(a lone surrogate)",
                                              field=where if where in kwargs else None) from None
                raise

        self.__dict__[name] = call  # later lookups find it without __getattr__
        return call


def open(path: PathLike, **options: Any) -> Database:  # noqa: A001 (mirrors the builtin on purpose)
    """Opens (by default creates) the libcdp database in directory `path` (str or os.PathLike).

    Keyword options are cdp::Options fields: create_if_missing, sync_writes, session_timeout_seconds,
    max_event_future_seconds, max_event_bytes, max_batch_bytes, max_profile_bytes, max_json_depth, max_batch_items, max_page_size,
    block_cache_bytes, write_buffer_bytes, compress_recent_tables, index_tail_events, rfm_refresh_seconds, suppress_erased_identifiers,
    retention_interval_seconds.
    Unknown options raise InvalidArgument.

    Raises FailedPrecondition when the directory is already open (in this process or another), NotFound when it
    is missing and create_if_missing=False, DataLoss for an unknown format version.
    """
    path_str = os.fsdecode(os.fspath(path))
    return Database(_CheckedEngine(_Engine.open(path_str, _convert.dumps(options, "options"))))


def default_options() -> Dict[str, Any]:
    """The default value of every option of cdp.open()."""
    from ._core import default_options as _defaults

    return _convert.loads(_defaults())

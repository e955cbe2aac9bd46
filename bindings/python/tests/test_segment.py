"""db.segment: Segment-spec ingestion from Python (the same C++ mapping as cdp-server's /v1/ routes)."""

import threading
from datetime import datetime, timezone

import pytest

import cdp

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def events_of(db, result):
    return list(db.profiles.timeline_all(result["profileId"]))


def test_track_maps_ecommerce_names(db):
    names = {"Order Completed": "purchase", "Product Viewed": "product_view", "Product Added": "add_to_cart",
             "Coupon Applied": "custom"}
    for i, (name, kind) in enumerate(names.items()):
        r = db.segment.ingest({"type": "track", "userId": "py-1", "event": name, "messageId": f"py-m{i}",
                               "properties": {"revenue": 20}, "timestamp": f"2026-03-01T10:0{i}:00Z"})
        assert r["type"] == "track" and r["messageId"] == f"py-m{i}" and r["eventId"] == f"py-m{i}"
        assert r["duplicate"] is False
        last = events_of(db, r)[-1]
        assert (last["type"], last["name"]) == (kind, name)
    profile = db.profiles.get(r["profileId"])
    assert profile["computed"]["purchaseCount"] == 1
    assert profile["computed"]["ltv"] == pytest.approx(20)


def test_page_screen_group_and_context(db):
    page = db.segment.ingest({"anonymousId": "py-anon", "name": "Home", "properties": {"path": "/"},
                              "context": {"ip": "198.51.100.4", "campaign": {"source": "ads", "name": "fall"},
                                          "device": {"id": "py-device"}},
                              "timestamp": "2026-03-01T10:00:00Z"}, type="page")
    screen = db.segment.ingest({"type": "screen", "anonymousId": "py-anon", "name": "Cart",
                                "timestamp": "2026-03-01T10:01:00Z"})
    group = db.segment.ingest({"type": "group", "anonymousId": "py-anon", "groupId": "team-1",
                               "timestamp": "2026-03-01T10:02:00Z"})
    assert page["profileId"] == screen["profileId"] == group["profileId"]
    events = events_of(db, page)
    assert [(e["type"], e.get("name")) for e in events] == [
        ("page_view", "Home"), ("page_view", "Cart"), ("custom", "group")]
    assert events[0]["deviceId"] == "py-device"
    assert events[0]["properties"]["context"]["ip"] == "198.51.100.4"
    assert events[1]["properties"]["screen"] == "Cart"
    assert events[2]["properties"]["groupId"] == "team-1"
    [session] = db.profiles.sessions(page["profileId"])
    assert (session["firstPage"], session["utmSource"], session["utmCampaign"]) == ("/", "ads", "fall")


def test_identify_and_alias_link_profiles(db):
    anon = db.segment.ingest({"type": "track", "anonymousId": "visitor-9", "event": "Browsed",
                              "timestamp": "2026-03-01T09:00:00Z"})
    who = db.segment.ingest({"type": "identify", "anonymousId": "visitor-9", "userId": "member-9",
                             "traits": {"first_name": "Lin", "last_name": "Chen", "email": "lin@example.com",
                                        "address": {"postalCode": "10115", "country": "DE"}, "tier": 2}})
    assert who["type"] == "identify" and who["profileId"] == anon["profileId"]
    other = db.segment.ingest({"type": "page", "anonymousId": "visitor-10", "timestamp": "2026-03-01T09:30:00Z"})
    assert other["profileId"] != anon["profileId"]
    alias = db.segment.ingest({"type": "alias", "previousId": "visitor-10", "userId": "member-9"})
    assert alias["profileId"] == anon["profileId"]
    assert alias["mergedProfiles"] == [other["profileId"]]
    p = db.profiles.get(anon["profileId"])
    assert p["attributes"]["firstName"] == "Lin" and p["attributes"]["lastName"] == "Chen"
    assert p["attributes"]["postalCode"] == "10115" and p["attributes"]["country"] == "DE"
    assert p["attributes"]["customFields"] == {"tier": 2}
    assert p["externalIds"]["email"] == "lin@example.com"
    assert sorted(p["externalIds"]["anonymousId"]) == ["visitor-10", "visitor-9"]
    assert p["computed"]["eventCount"] == 2


def test_timestamp_rule_uses_received_at(db):
    r = db.segment.ingest({"type": "track", "userId": "py-skew", "event": "Tapped",
                           "originalTimestamp": "2025-06-01T00:00:00Z", "sentAt": "2025-06-01T00:00:10Z"},
                          received_at=RECEIVED)
    assert events_of(db, r)[0]["timestamp"] == "2026-03-01T11:59:50.000Z"
    r = db.segment.ingest({"type": "track", "userId": "py-skew", "event": "Tapped again"},
                          received_at="2026-03-01T12:30:00Z")
    assert events_of(db, r)[-1]["timestamp"] == "2026-03-01T12:30:00.000Z"


def test_validation_errors_name_the_field(db):
    cases = [({"type": "track", "userId": "u"}, "event"),
             ({"type": "track", "event": "x"}, "userId"),
             ({"type": "identify", "userId": "u", "traits": {"firstName": ["A"]}}, "traits.firstName"),
             ({"type": "alias", "userId": "u"}, "previousId"),
             ({"type": "nope", "userId": "u"}, "type"),
             ({"type": "track", "userId": "u", "event": "x", "timestamp": "soon"}, "timestamp")]
    for message, field in cases:
        with pytest.raises(cdp.InvalidArgument) as info:
            db.segment.ingest(message)
        assert info.value.field == field, message
    with pytest.raises(cdp.InvalidArgument):
        db.segment.ingest({"type": "track", "userId": "u", "event": "x", "properties": {"b": "x" * (33 << 10)}})
    with pytest.raises(TypeError):
        db.segment.ingest_batch("not a list")
    assert db.stats()["events"] == 0


def test_batch_results_and_limits(db):
    result = db.segment.ingest_batch({"sentAt": "2026-03-01T11:00:05Z", "batch": [
        {"type": "identify", "userId": "py-b", "traits": {"email": "b@example.com"}},
        {"type": "track", "userId": "py-b", "event": "Order Completed", "properties": {"total": 7},
         "originalTimestamp": "2026-03-01T11:00:00Z"},
        {"type": "track", "event": "missing ids"}]}, received_at=RECEIVED)
    assert (result["accepted"], result["rejected"]) == (2, 1)
    assert [r["status"] for r in result["results"]] == ["ok", "ok", "invalid_argument"]
    assert result["results"][2]["error"]["field"] == "userId"
    assert events_of(db, result["results"][1])[0]["timestamp"] == "2026-03-01T11:59:55.000Z"
    big = [{"type": "track", "userId": "py-b", "event": "E", "properties": {"b": "y" * (30 << 10)}}] * 18
    with pytest.raises(cdp.InvalidArgument):
        db.segment.ingest_batch(big)


def test_retries_are_duplicates(db):
    message = {"type": "track", "anonymousId": "py-retry", "event": "Order Completed", "messageId": "py-r1",
               "properties": {"revenue": 3}, "originalTimestamp": "2026-03-01T11:58:00Z",
               "sentAt": "2026-03-01T11:58:01Z"}
    first = db.segment.ingest(message, received_at=RECEIVED)
    # A retry two seconds later computes another event time; the dedupe window recognises the messageId.
    again = db.segment.ingest(message, received_at="2026-03-01T12:00:02Z")
    assert first["duplicate"] is False and again["duplicate"] is True
    assert len(events_of(db, first)) == 1
    assert db.profiles.get(first["profileId"])["computed"]["ltv"] == pytest.approx(3)

    # With the window off only the engine's rule is left: same time -> duplicate, another time -> stored again.
    db.segment.configure(dedupe_window_seconds=0)
    assert db.segment.dedupe_window_seconds == 0
    assert db.segment.ingest(message, received_at=RECEIVED)["duplicate"] is True
    assert db.segment.ingest(message, received_at="2026-03-01T12:00:09Z")["duplicate"] is False
    assert len(events_of(db, first)) == 2


def test_window_holds_across_a_reopen(tmp_path):
    # The messageIds are remembered in the database too: a new process recognises a retry whose computed time
    # differs (RudderStack-style messages carry no timestamp).
    message = {"type": "track", "anonymousId": "py-reopen", "event": "Order Completed", "messageId": "py-ro1",
               "properties": {"revenue": 4}, "originalTimestamp": "2026-03-01T11:58:00Z",
               "sentAt": "2026-03-01T11:58:01Z"}
    identify = {"type": "identify", "userId": "py-reopen-u", "messageId": "py-ro2", "traits": {"plan": "a"}}
    with cdp.open(tmp_path / "db") as db:
        first = db.segment.ingest(message, received_at=RECEIVED)
        who = db.segment.ingest(identify, received_at=RECEIVED)
        db.profiles.patch(who["profileId"], {"attributes": {"customFields": {"plan": "b"}}})
    with cdp.open(tmp_path / "db") as db:
        again = db.segment.ingest(message, received_at="2026-03-01T12:00:30Z")
        assert again["duplicate"] is True
        assert len(events_of(db, first)) == 1
        assert db.profiles.get(first["profileId"])["computed"]["ltv"] == pytest.approx(4)
        # The identify's messageId was stored with it: its retry changes nothing.
        retry = db.segment.ingest(identify, received_at="2026-03-01T12:00:30Z")
        assert retry["duplicate"] is True and retry["profileId"] == who["profileId"]
        assert db.profiles.get(who["profileId"])["attributes"]["customFields"]["plan"] == "b"


def test_identify_retry_within_window_is_skipped(db):
    db.segment.ingest({"type": "identify", "userId": "py-i", "messageId": "i-1", "traits": {"plan": "a"}})
    db.segment.ingest({"type": "identify", "userId": "py-i", "messageId": "i-2", "traits": {"plan": "b"}})
    retry = db.segment.ingest({"type": "identify", "userId": "py-i", "messageId": "i-1", "traits": {"plan": "a"}})
    assert retry["duplicate"] is True
    assert db.profiles.get(retry["profileId"])["attributes"]["customFields"]["plan"] == "b"


def test_threads_share_one_ingester(db):
    errors = []

    def worker(n):
        try:
            for i in range(20):
                db.segment.ingest({"type": "track", "userId": f"py-t{n % 2}", "event": "Tick",
                                   "messageId": f"tick-{n}-{i}", "timestamp": "2026-03-01T10:00:00Z"})
                # Every thread also resends one shared message: it must be stored once.
                db.segment.ingest({"type": "track", "userId": "py-t0", "event": "Shared", "messageId": "shared-1",
                                   "originalTimestamp": "2026-03-01T10:00:00Z", "sentAt": "2026-03-01T10:00:01Z"})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.stats()["events"] == 4 * 20 + 1


def test_closed_database_raises(db_path):
    db = cdp.open(db_path)
    db.close()
    with pytest.raises(cdp.FailedPrecondition):
        db.segment.ingest({"type": "track", "userId": "u", "event": "x"})


def test_a_restricted_writer_ingests_with_dedupe_and_retries_tell_it_nothing(db):
    # The deduplicator's bookkeeping (admin-only idempotency keys) runs for the adapter, not the caller; a retry's
    # answer names the profile only to a principal that may read the identifiers' links.
    db.governance.set_policy({
        "roles": {"collector": {"read": ["public"], "write": ["public", "internal", "pii"]},
                  "steward": {"read": ["public", "internal", "pii"], "write": ["public", "internal", "pii"]}},
        "principals": {"col": {"roles": ["collector"]}, "rw": {"roles": ["steward"]}}})
    identify = {"type": "identify", "userId": "py-g", "messageId": "py-g1", "traits": {"plan": "basic"}}
    with cdp.principal("col"):
        first = db.segment.ingest(identify, received_at=RECEIVED)
        assert first["duplicate"] is False and "profileId" not in first and first["linksHidden"] is True
        db.segment.ingest({"type": "identify", "userId": "py-g", "messageId": "py-g2", "traits": {"plan": "pro"}},
                          received_at=RECEIVED)
        again = db.segment.ingest(identify, received_at="2026-03-01T12:00:03Z")
        assert again["duplicate"] is True and "profileId" not in again, again
    with cdp.principal("rw"):
        told = db.segment.ingest(identify, received_at="2026-03-01T12:00:04Z")
        assert told["duplicate"] is True and told["profileId"], told
    assert db.profiles.get(told["profileId"])["attributes"]["customFields"]["plan"] == "pro"


def test_a_message_is_held_to_the_same_depth_alone_and_in_a_batch(db):
    def message(levels):  # a track message nested `levels` deep, in a member the mapping drops
        deep = 1
        for _ in range(levels - 1):  # the message is level 1: its deepest array is level `levels`
            deep = [deep]
        return {"type": "track", "userId": f"deep-{levels}", "event": "E", "integrations": deep}

    for levels, ok in ((66, True), (67, False)):
        batch = db.segment.ingest_batch([message(levels)])
        assert [r["status"] for r in batch["results"]] == (["ok"] if ok else ["invalid_argument"]), levels
        if ok:
            assert db.segment.ingest(message(levels))["type"] == "track"
        else:
            with pytest.raises(cdp.InvalidArgument) as info:
                db.segment.ingest(message(levels))
            assert info.value.field.startswith("integrations"), info.value.field

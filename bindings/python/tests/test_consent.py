"""Consent per purpose from Python (``db.consent``): statements, history, Consent Mode v2, enforcement."""

import datetime as dt

import pytest

import cdp


def new_profile(db, email):
    return db.profiles.create({"externalIds": {"email": email}})["id"]


def test_record_get_and_history(db):
    pid = new_profile(db, "ada@example.com")
    doc = db.consent.record(pid, purposes={"email": "granted", "newsletter": True}, source="signup",
                            policy_version="v1", timestamp=dt.datetime(2026, 11, 1, 9, tzinfo=dt.timezone.utc))
    assert doc["purposes"]["email"]["granted"] is True
    assert doc["purposes"]["email"]["at"] == "2026-11-01T09:00:00.000Z"
    assert doc["purposes"]["newsletter"]["policyVersion"] == "v1"
    db.consent.record(identifier={"type": "email", "value": "ADA@example.com"}, purposes={"email": "denied"},
                      source="unsubscribe")
    doc = db.consent.get(pid)
    assert doc["purposes"]["email"]["granted"] is False
    assert doc["purposes"]["email"]["source"] == "unsubscribe"
    assert len(doc["history"]) == 2
    assert db.profiles.get(pid)["consent"]["email"] is False

    frame = db.consent.history(pid)
    assert list(frame["purpose"]) == ["email", "newsletter", "email"]
    assert list(frame["granted"]) == [True, True, False]
    assert list(frame["source"]) == ["signup", "signup", "unsubscribe"]
    assert str(frame["at"].dtype).startswith("datetime64")


def test_history_pages(db):
    pid = new_profile(db, "paged@example.com")
    for i in range(25):
        db.consent.record(pid, purposes={"sms": i % 2 == 0}, source=f"s{i}")
    first = db.consent.history_page(pid, limit=10)
    assert len(first["items"]) == 10 and first["nextCursor"] is not None
    second = db.consent.history_page(pid, limit=10, cursor=first["nextCursor"])
    assert first["items"][-1]["id"] != second["items"][0]["id"]
    sources = [r["source"] for r in db.consent.records(pid) if r["via"] == "consent"]
    assert sources == [f"s{i}" for i in range(25)]
    assert db.consent.get(pid)["historyCount"] == len(list(db.consent.records(pid)))
    with pytest.raises(cdp.InvalidArgument) as err:
        db.consent.history_page(pid, limit=0)
    assert err.value.field == "limit"
    with pytest.raises(cdp.InvalidArgument):
        db.consent.history_page(pid, cursor="not-a-cursor")
    with pytest.raises(cdp.NotFound):
        db.consent.history_page("nobody")


def test_consent_mode_v2(db):
    pid = new_profile(db, "cm@example.com")
    doc = db.consent.record(pid, consent_mode={"ad_storage": "granted", "ad_user_data": "granted",
                                               "ad_personalization": "granted", "analytics_storage": "denied"})
    assert doc["consentMode"] == {"ad_storage": "granted", "analytics_storage": "denied", "ad_user_data": "granted",
                                  "ad_personalization": "granted"}
    consent = db.profiles.get(pid)["consent"]
    assert consent["ads"] is True and consent["tracking"] is False


def test_out_of_order_statement_is_superseded(db):
    pid = new_profile(db, "late@example.com")
    db.consent.record(pid, purposes={"sms": "granted"}, timestamp="2026-11-02T00:00:00Z")
    doc = db.consent.record(pid, purposes={"sms": "denied"}, timestamp="2026-11-01T00:00:00Z")
    assert doc["superseded"] == ["sms"] and doc["applied"] == []
    assert db.profiles.get(pid)["consent"]["sms"] is True


def test_tracking_denied_refuses_events(db):
    pid = new_profile(db, "private@example.com")
    db.consent.record(pid, purposes={"tracking": "denied"})
    with pytest.raises(cdp.FailedPrecondition, match="tracking"):
        db.events.track({"type": "page_view", "profileId": pid})
    result = db.events.track_batch([{"type": "page_view", "email": "private@example.com"},
                                    {"type": "page_view", "email": "someone@example.com"}])
    assert result["accepted"] == 1 and result["rejected"] == 1
    assert result["results"][0]["status"] == "failed_precondition"
    assert db.profiles.get(pid)["computed"]["eventCount"] == 0


def test_errors_name_the_field(db):
    pid = new_profile(db, "v@example.com")
    with pytest.raises(cdp.InvalidArgument) as err:
        db.consent.record(pid, purposes={"email": "perhaps"})
    assert err.value.field == "purposes.email"
    with pytest.raises(cdp.InvalidArgument) as err:
        db.consent.record(pid)
    assert err.value.field == "purposes"
    with pytest.raises(cdp.NotFound):
        db.consent.get("nobody")
    with pytest.raises(TypeError):
        db.consent.record(pid, purposes={"email": True}, timestamp=True)


def test_gdpr_export_erase_requests_and_suppression(db):
    pid = new_profile(db, "gdpr@example.com")
    db.events.track({"type": "purchase", "email": "gdpr@example.com", "properties": {"revenue": 12}})
    db.consent.record(pid, purposes={"email": "granted"})
    export = db.gdpr.export(pid)
    assert export["profileId"] == pid
    assert len(export["events"]) == 1 and export["events"][0]["properties"]["revenue"] == 12
    assert export["consent"]["purposes"]["email"]["granted"] is True
    assert db.gdpr.request(export["requestId"])["type"] == "access"

    record = db.gdpr.erase(pid)
    assert record["status"] == "completed" and record["suppressedIdentifiers"] == 1
    with pytest.raises(cdp.NotFound):
        db.profiles.get(pid)
    assert db.gdpr.is_suppressed("email", "GDPR@example.com")
    with pytest.raises(cdp.FailedPrecondition, match="erased"):
        db.events.track({"type": "page_view", "email": "gdpr@example.com"})
    listed = db.gdpr.requests(profile_id=pid)
    assert [r["type"] for r in listed["items"]] == ["erasure", "access"]
    assert listed["turnaround"]["completed"] == 2
    assert db.gdpr.unsuppress("email", "gdpr@example.com")["unsuppressed"] is True
    assert db.events.track({"type": "page_view", "email": "gdpr@example.com"})["profileCreated"] is True


def test_suppression_can_be_turned_off(tmp_path):
    with cdp.open(tmp_path / "db", suppress_erased_identifiers=False) as db:
        pid = new_profile(db, "back@example.com")
        db.gdpr.erase(pid)
        assert db.events.track({"type": "page_view", "email": "back@example.com"})["profileCreated"] is True


def test_audit_log(db):
    pid = new_profile(db, "audited@example.com")
    db.profiles.get(pid)
    entries = db.audit.list(target=pid)["items"]
    assert [e["operation"] for e in entries] == ["profiles.get", "profiles.create"]
    assert entries[0]["principal"] == "local" and entries[0]["outcome"] == "ok"
    result = db.audit.verify()
    assert result["ok"] is True and result["entries"] == 3  # reading the trail is an entry too
    trail = db.audit.list(operation="audit.list")["items"]
    assert len(trail) == 1 and trail[0]["targets"] == [pid] and trail[0]["count"] == 2, trail

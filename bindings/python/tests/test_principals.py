"""Governance from Python (``db.governance``, ``cdp.principal``): classes, roles, principals, API keys."""

import threading

import pytest

import cdp

POLICY = {
    "classification": {"attributes.customFields.tier": "internal"},
    "roles": {"analyst": {"read": ["public", "internal"]},
              "editor": {"read": ["public", "internal"], "write": ["internal"]}},
    "principals": {"ann": {"roles": ["analyst"]}, "ed": {"roles": ["editor"]}},
}


@pytest.fixture
def ada(db):
    db.governance.set_policy(POLICY)
    return db.profiles.create({"attributes": {"email": "ada@example.com", "country": "GB",
                                              "customFields": {"tier": "gold", "ssn": "078-05-1120"}}})["id"]


def test_reads_are_filtered_for_the_principal(db, ada):
    with cdp.principal("ann"):
        assert cdp.principal.current() == "ann"
        doc = db.profiles.get(ada)
        assert doc["attributes"] == {"country": "GB", "customFields": {"tier": "gold"}}
        assert "externalIds" not in doc
        with pytest.raises(cdp.PermissionDenied) as refused:
            db.profiles.search([{"field": "attributes.email", "operator": "=", "value": "ada@example.com"}])
        assert refused.value.field == "attributes.email"
        with pytest.raises(cdp.PermissionDenied):
            db.audit.list()
        assert db.governance.access()["read"] == ["internal", "public"]
    assert cdp.principal.current() == "local"
    assert db.profiles.get(ada)["attributes"]["email"] == "ada@example.com"


def test_writes_are_refused_whole_and_principals_are_per_thread(db, ada):
    with cdp.principal("ed"):
        db.profiles.patch(ada, {"attributes": {"country": "FR"}})
        with pytest.raises(cdp.PermissionDenied) as refused:
            db.profiles.patch(ada, {"attributes": {"country": "DE", "email": "x@example.com"}})
        assert refused.value.field == "attributes.email"
        seen = {}
        other = threading.Thread(target=lambda: seen.update(doc=db.profiles.get(ada)))  # runs as "local"
        other.start()
        other.join()
        assert seen["doc"]["attributes"]["email"] == "ada@example.com"
    doc = db.profiles.get(ada)
    assert doc["attributes"]["country"] == "FR"
    assert doc["attributes"]["email"] == "ada@example.com"
    with cdp.principal("stranger"), pytest.raises(cdp.PermissionDenied):
        db.profiles.get(ada)


def test_api_keys(db, ada):
    issued = db.governance.create_api_key("ann", description="notebook")
    assert db.governance.authenticate(issued["key"]) == "ann"
    assert [k["id"] for k in db.governance.api_keys()] == [issued["id"]]
    assert "key" not in db.governance.api_keys()[0]
    db.governance.revoke_api_key(issued["id"])
    with pytest.raises(cdp.Unauthenticated):
        db.governance.authenticate(issued["key"])
    with pytest.raises(cdp.InvalidArgument) as bad:
        db.governance.set_policy({"roles": {"x": {"read": ["nope"]}}})
    assert bad.value.field == "roles.x.read[0]"


def test_a_writer_that_may_not_read_identifiers_is_not_told_who_holds_them(db):
    db.governance.set_policy({
        "roles": {"collector": {"read": ["public"], "write": ["public", "internal", "pii"]}},
        "principals": {"col": {"roles": ["collector"]}},
    })
    ada = db.profiles.create({"externalIds": {"email": "ada@example.com"}})["id"]
    with cdp.principal("col"):
        answer = db.events.track({"type": "page_view", "email": "ada@example.com"})
        assert answer["linksHidden"] is True
        assert "profileId" not in answer and "sessionId" not in answer
        identified = db.identity.identify({"email": "ada@example.com"})
        assert identified["linksHidden"] is True and "profileId" not in identified
    events = db.profiles.timeline(ada)
    assert answer["eventId"] in [e["id"] for e in events]

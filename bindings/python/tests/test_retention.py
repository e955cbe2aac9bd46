"""Retention from Python (``db.retention``): policies, runs and their records."""

import asyncio
import datetime as dt

import pytest

import cdp


def test_old_events_are_purged_and_the_run_recorded(db):
    pid = db.profiles.create({"id": "p1"})["id"]
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    db.events.track({"type": "page_view", "profileId": pid, "timestamp": old})
    db.events.track({"type": "purchase", "profileId": pid, "timestamp": old, "properties": {"revenue": 5}})
    db.events.track({"type": "page_view", "profileId": pid})
    policies = db.retention.set_policies([{"name": "views", "target": "events", "eventType": "page_view",
                                           "olderThan": "365d"}])
    assert policies[0]["id"].startswith("ret_")
    run = db.retention.run()
    assert run["eventsPurged"] == 1
    assert [e["type"] for e in db.profiles.timeline(pid)] == ["purchase", "page_view"]
    assert db.profiles.get(pid)["computed"]["eventCount"] == 2
    assert db.retention.runs()["items"][0]["id"] == run["id"]
    with pytest.raises(cdp.InvalidArgument) as bad:
        db.retention.set_policies([{"name": "x", "target": "profiles", "inactiveFor": "forever"}])
    assert bad.value.field == "policies[0].inactiveFor"


def test_principals_follow_asyncio_tasks(db):
    db.governance.set_policy({"roles": {"viewer": {"read": ["public"]}},
                              "principals": {"vic": {"roles": ["viewer"]}}})
    pid = db.profiles.create({"attributes": {"email": "ada@example.com", "country": "GB"}})["id"]

    async def as_principal(name, started, other_started):
        with cdp.principal(name):
            started.set()
            await other_started.wait()  # both blocks are open at once, interleaved on one thread
            return db.profiles.get(pid)

    async def main():
        a, b = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(as_principal("vic", a, b), as_principal("local", b, a))

    vic_doc, local_doc = asyncio.run(main())
    assert "attributes" not in vic_doc
    assert local_doc["attributes"]["email"] == "ada@example.com"
    assert cdp.principal.current() == "local"

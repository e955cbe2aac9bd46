"""Segments from Python: db.segments (rules over profiles and behaviour), exact after every write."""

from datetime import date, datetime, timedelta

import pytest

import cdp


def buy(db, who, revenue=10.0):
    return db.events.track({"type": "purchase", "customerId": who, "properties": {"revenue": revenue}})["profileId"]


def test_segment_lifecycle(db):
    ids = [buy(db, f"c{i}", revenue=i) for i in range(30)]
    for pid in ids[:10]:
        db.profiles.patch(pid, {"attributes": {"country": "FR"}})
    rule = {"operator": "AND", "conditions": [
        {"field": "attributes.country", "operator": "=", "value": "FR"},
        {"event": "purchase", "sum": "properties.revenue", "value": {">=": 5}}]}
    assert db.segments.estimate(rule) == 5  # revenue 5..9
    seg = db.segments.create({"name": "French spenders", "rule": rule})
    assert seg["id"].startswith("seg_") and seg["size"] == 5
    buy(db, "c0", revenue=100)  # c0 crosses the threshold
    assert db.segments.size(seg["id"]) == 6
    page = db.segments.members(seg["id"], limit=4)
    assert len(page.items) == 4 and page.has_more
    everyone = {p["id"] for p in db.segments.members_all(seg["id"], page_size=4)}
    assert everyone == set(ids[:1] + ids[5:10])
    assert [s["id"] for s in db.segments.list()] == [seg["id"]]
    updated = db.segments.update(seg["id"], {"name": "French", "rule": rule["conditions"][0]})
    assert updated["size"] == 10 and updated["createdAt"] == seg["createdAt"]
    db.segments.delete(seg["id"])
    with pytest.raises(cdp.NotFound):
        db.segments.get(seg["id"])


def test_segment_errors(db):
    with pytest.raises(cdp.InvalidArgument) as err:
        db.segments.create({"name": "bad", "rule": {"conditions": [{"event": "purchase", "count": {"~": 1}}]}})
    assert err.value.field.startswith("rule.conditions[0].count")
    with pytest.raises(cdp.InvalidArgument) as err:
        db.segments.create({"rule": {}})
    assert err.value.field == "name"
    base = db.segments.create({"name": "buyers", "rule": {"event": "purchase"}})
    db.segments.create({"name": "not buyers", "rule": {"not": {"segment": base["id"]}}})
    with pytest.raises(cdp.FailedPrecondition):
        db.segments.delete(base["id"])


def test_change_feed_watch_and_past_membership(db):
    seg = db.segments.create({"name": "repeat buyers", "rule": {"event": "purchase", "count": {">=": 2}}})
    a = buy(db, "a")
    assert db.segments.changes(seg["id"])["changes"] == []
    buy(db, "a")  # a enters before track returns
    feed = db.segments.changes(seg["id"])
    assert [(c["change"], c["profileId"]) for c in feed["changes"]] == [("entered", a)]
    assert feed["changes"][0]["cause"]["kind"] == "event"
    assert db.profiles.get(a)["segments"] == [seg["id"]]
    entered_at = feed["changes"][0]["time"]
    assert db.segments.members_at(seg["id"], entered_at) == [a]
    assert db.segments.members_at(seg["id"], "2020-01-01T00:00:00Z") == []
    with pytest.raises(cdp.InvalidArgument):
        db.segments.members_at(seg["id"], "soon")
    # The same times as a datetime, a date and epoch milliseconds; changes() takes them as since.
    entered = datetime.fromisoformat(entered_at.replace("Z", "+00:00"))
    assert db.segments.members_at(seg["id"], entered) == [a]
    assert db.segments.members_at(seg["id"], date(2020, 1, 1)) == []
    assert db.segments.members_at(seg["id"], int(entered.timestamp() * 1000)) == [a]
    assert db.segments.changes(seg["id"], since=entered - timedelta(seconds=1))["changes"] == feed["changes"]
    assert db.segments.changes(seg["id"], since=entered + timedelta(seconds=1))["changes"] == []
    with pytest.raises(TypeError):
        db.segments.members_at(seg["id"], None)

    # watch() yields what is already there, then waits for more; it ends after `timeout` idle seconds.
    import threading
    import time

    def later():
        time.sleep(0.3)
        buy(db, "b")
        buy(db, "b")
        buy(db, "c")
        buy(db, "c")

    writer = threading.Thread(target=later)
    writer.start()
    seen = []
    for change in db.segments.watch(seg["id"], since=None, timeout=5):
        seen.append((change["change"], change["profileId"]))
        if len(seen) == 3:
            break
    writer.join()
    assert [c for c, _ in seen] == ["entered", "entered", "entered"]
    # Resuming from a cursor gives only what came after it.
    last = db.segments.changes(seg["id"])["cursor"]
    assert list(db.segments.watch(seg["id"], since=last, timeout=0.2)) == []
    # An erasure takes every entry naming the person out of the stored feed, its own exit too; a watcher
    # resuming from before it then waits (and ends idle) instead of finding a change it cannot read.
    c = seen[2][1]
    db.profiles.delete(c)
    assert [ch["profileId"] for ch in db.segments.changes(seg["id"])["changes"]] == [a, seen[1][1]]
    result = []
    watcher = threading.Thread(
        target=lambda: result.extend(db.segments.watch(seg["id"], since=last, timeout=0.3)), daemon=True)
    watcher.start()
    watcher.join(10)
    assert not watcher.is_alive(), "watch kept finding a change it could not read"
    assert result == []


def test_manual_lists_overlap_and_export(db):
    ann = db.profiles.create({"externalIds": {"email": "ann@example.com"}, "attributes": {"firstName": "Ann"}})["id"]
    bob = db.profiles.create({"attributes": {"firstName": "Bob", "country": "FR"}})["id"]
    vips = db.segments.create({"name": "VIPs", "type": "manual"})
    done = db.segments.add_members(vips["id"], [{"type": "email", "value": "ANN@example.com"}, bob, "nobody"])
    assert done["added"] == 2 and done["notFound"] == ["nobody"]
    assert db.segments.size(vips["id"]) == 2
    french = db.segments.create({"name": "fr", "rule": {"field": "attributes.country", "operator": "=",
                                                        "value": "FR"}})
    overlap = db.segments.overlap([vips["id"], french["id"]])
    assert overlap["matrix"][0][1] == {"intersection": 1, "union": 2, "jaccard": 0.5}
    text = db.segments.export(vips["id"], fields=["id", "attributes.firstName"])
    lines = text.strip().split("\r\n")
    assert lines[0] == "id,attributes.firstName"
    assert sorted(lines[1:]) == sorted([f"{ann},Ann", f"{bob},Bob"])
    import json
    rows = [json.loads(line) for line in db.segments.export(vips["id"], "jsonl", ["id"]).splitlines()]
    assert {r["id"] for r in rows} == {ann, bob}
    assert db.segments.remove_members(vips["id"], [ann])["removed"] == 1
    assert db.segments.size(vips["id"]) == 1
    with pytest.raises(cdp.FailedPrecondition):
        db.segments.add_members(french["id"], [ann])
    with pytest.raises(cdp.InvalidArgument):
        db.segments.export(vips["id"], "xml")


def test_audiences(db):
    a = db.profiles.create({"externalIds": {"email": "a@example.com"}, "attributes": {"country": "FR"},
                            "consent": {"email": True}})["id"]
    b = db.profiles.create({"externalIds": {"email": "b@example.com"}, "attributes": {"country": "FR"},
                            "consent": {"email": False}})["id"]
    c = db.profiles.create({"externalIds": {"email": "c@example.com"}, "attributes": {"country": "FR"},
                            "consent": {"email": True}})["id"]
    fr = db.segments.create({"name": "fr", "rule": {"field": "attributes.country", "operator": "=", "value": "FR"}})
    lst = db.audiences.create_suppression_list({"name": "unsubscribed"})
    assert db.audiences.suppress(lst["id"], [{"type": "email", "value": "C@example.com"}])["added"] == 1
    aud = db.audiences.create({"name": "newsletter", "segments": {"operator": "OR", "ids": [fr["id"]]},
                               "suppressionLists": [lst["id"]], "channel": "email"})
    assert aud["size"] == 1
    assert [p["id"] for p in db.audiences.members(aud["id"]).items] == [a]
    why = db.audiences.overlap(aud["id"])
    assert (why["combined"], why["suppressed"], why["withoutConsent"]) == (3, 1, 1)
    assert db.audiences.export(aud["id"], fields=["id"]).split("\r\n")[1] == a
    db.profiles.patch(b, {"consent": {"email": True}})
    assert db.audiences.size(aud["id"]) == 2
    assert db.audiences.get_suppression_list(lst["id"])["size"] == 1
    with pytest.raises(cdp.FailedPrecondition):
        db.audiences.delete_suppression_list(lst["id"])
    with pytest.raises(cdp.InvalidArgument) as err:
        db.audiences.create({"name": "x", "segments": {"ids": [fr["id"]]}, "channel": "Fax!"})
    assert err.value.field == "channel"
    db.audiences.delete(aud["id"])
    assert db.audiences.list() == []


def test_rfm(db):
    for i in range(5):
        for _ in range(i + 1):
            buy(db, f"r{i}", revenue=10.0 * (i + 1))
    db.segments.create({"name": "all", "rule": []})  # the index exists: profiles are scored
    assert db.segments.recompute_rfm()["scored"] == 5
    best = db.profiles.get(buy(db, "r4", revenue=1.0))
    assert best["computed"]["rfm"]["f"] == 5 and best["computed"]["rfm"]["segment"]
    assert db.segments.set_rfm_config({"window": "30d"})["window"] == "30d"
    assert db.segments.rfm_config()["revenuePath"] == "properties.revenue"
    with pytest.raises(cdp.InvalidArgument) as err:
        db.segments.set_rfm_config({"window": "later"})
    assert err.value.field == "window"

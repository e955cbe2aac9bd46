"""Segments from Python: db.segments (rules over profiles and behaviour), exact after every write."""

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

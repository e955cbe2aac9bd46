import pytest

import cdp


def test_create_get_update_delete(db):
    created = db.profiles.create(
        {
            "attributes": {"email": "Ada@Example.com ", "firstName": "Ada", "country": "GB", "tags": ["vip"]},
            "consent": {"email": True},
        }
    )
    pid = created["id"]
    assert isinstance(pid, str) and len(pid) == 26  # ULID
    assert created["attributes"]["firstName"] == "Ada"
    assert created["externalIds"]["email"] == "ada@example.com"  # trimmed, lower-cased, copied
    assert isinstance(created["createdAt"], str) and created["createdAt"].endswith("Z")

    got = db.profiles.get(pid)
    assert got["id"] == pid
    assert got["attributes"]["tags"] == ["vip"]
    assert got["consent"]["email"] is True

    # update = Replace: writable fields absent from the input become empty.
    replaced = db.profiles.update(pid, {"attributes": {"firstName": "Augusta"}})
    assert replaced["id"] == pid
    assert replaced["createdAt"] == created["createdAt"]
    assert replaced["attributes"]["firstName"] == "Augusta"
    assert "country" not in replaced["attributes"]
    assert db.profiles.get(pid)["attributes"]["firstName"] == "Augusta"

    assert db.profiles.delete(pid) is None
    with pytest.raises(cdp.NotFound) as info:
        db.profiles.get(pid)
    assert info.value.code == "not_found"
    with pytest.raises(cdp.NotFound):
        db.profiles.delete(pid)


def test_create_with_given_id_and_duplicate(db):
    created = db.profiles.create({"id": "cust-1", "attributes": {"firstName": "Grace"}})
    assert created["id"] == "cust-1"
    with pytest.raises(cdp.AlreadyExists) as info:
        db.profiles.create({"id": "cust-1"})
    assert info.value.code == "already_exists"


def test_identifier_collision_names_field(db):
    db.profiles.create({"externalIds": {"customerId": "C-1"}})
    with pytest.raises(cdp.AlreadyExists) as info:
        db.profiles.create({"externalIds": {"customerId": "C-1"}})
    assert info.value.field is not None
    assert "customerId" in info.value.field


def test_create_batch_reports_each_item(db):
    db.profiles.create({"externalIds": {"customerId": "C-0"}})
    profiles = [{"attributes": {"firstName": f"P{i}", "email": f"p{i}@example.com"}} for i in range(300)]
    profiles[5] = {"externalIds": {"customerId": "C-0"}}  # taken by a stored profile
    profiles[6] = {"attributes": {"firstName": 1}}         # invalid
    out = db.profiles.create_batch(profiles)
    assert (out["accepted"], out["rejected"]) == (298, 2)
    assert out["results"][5]["status"] == "already_exists"
    assert out["results"][5]["error"]["field"] == "externalIds.customerId"
    assert out["results"][6]["error"] == {"code": "invalid_argument", "message": out["results"][6]["error"]["message"],
                                          "field": "attributes.firstName"}
    got = db.profiles.get(out["results"][7]["id"])
    assert got["externalIds"]["email"] == "p7@example.com"
    assert db.stats()["profiles"] == 299
    with pytest.raises(TypeError):
        db.profiles.create_batch({"attributes": {}})


def test_patch_sets_deletes_and_keeps(db):
    created = db.profiles.create(
        {"attributes": {"firstName": "Ada", "lastName": "Lovelace", "city": "London",
                        "customFields": {"tier": "gold", "score": 3}}}
    )
    pid = created["id"]
    patched = db.profiles.patch(
        pid, {"attributes": {"city": None, "country": "GB", "customFields": {"score": None, "plan": "pro"}}}
    )
    attrs = patched["attributes"]
    assert "city" not in attrs  # null deletes
    assert attrs["country"] == "GB"  # set
    assert attrs["firstName"] == "Ada" and attrs["lastName"] == "Lovelace"  # untouched
    assert attrs["customFields"] == {"tier": "gold", "plan": "pro"}  # merged recursively
    assert db.profiles.get(pid)["attributes"] == attrs


def test_patch_result_is_validated(db):
    pid = db.profiles.create({"attributes": {"firstName": "Ada"}})["id"]
    with pytest.raises(cdp.InvalidArgument) as info:
        db.profiles.patch(pid, {"attributes": {"firstName": 42}})
    assert info.value.field == "attributes.firstName"
    assert db.profiles.get(pid)["attributes"]["firstName"] == "Ada"  # nothing written


def test_unknown_field_rejected(db):
    with pytest.raises(cdp.InvalidArgument) as info:
        db.profiles.create({"nickname": "x"})
    assert info.value.field == "nickname"
    assert isinstance(info.value, ValueError)


def test_non_dict_input_is_type_error(db):
    with pytest.raises(TypeError):
        db.profiles.create(["not", "a", "dict"])


def _people(db, n=12):
    ids = []
    for i in range(n):
        ids.append(
            db.profiles.create(
                {
                    "attributes": {
                        "email": f"user{i:02d}@example.com",
                        "country": "US" if i % 2 == 0 else "DE",
                        "tags": ["vip"] if i % 3 == 0 else [],
                        "customFields": {"rank": i},
                    }
                }
            )["id"]
        )
    return ids


def test_search_with_conditions(db):
    _people(db)
    page = db.profiles.search([("attributes.country", "=", "US")])
    assert len(page) == 6
    assert all(p["attributes"]["country"] == "US" for p in page)
    assert page.next_cursor is None and not page.has_more

    both = db.profiles.search(
        [{"field": "attributes.country", "operator": "=", "value": "US"},
         {"field": "attributes.tags", "operator": "contains", "value": "vip"}]
    )
    ranks = sorted(p["attributes"]["customFields"]["rank"] for p in both)
    assert ranks == [0, 6]

    either = db.profiles.search(
        [("attributes.customFields.rank", ">=", 10), ("attributes.tags", "contains", "vip")], operator="OR"
    )
    assert sorted(p["attributes"]["customFields"]["rank"] for p in either) == [0, 3, 6, 9, 10, 11]

    nested = db.profiles.search(
        [("attributes.country", "=", "DE"),
         {"operator": "OR", "conditions": [("attributes.customFields.rank", "<", 2),
                                            ("attributes.customFields.rank", "in", [9, 11])]}]
    )
    assert sorted(p["attributes"]["customFields"]["rank"] for p in nested) == [1, 9, 11]

    assert len(db.profiles.search([("attributes.country", "=", "FR")])) == 0

    # Case-blind, prefix, exclusion and presence conditions.
    assert len(db.profiles.search([{"field": "attributes.email", "operator": "=", "value": "USER03@Example.COM",
                                    "ignoreCase": True}])) == 1
    assert len(db.profiles.search([("attributes.email", "=", "USER03@Example.COM")])) == 0
    assert len(db.profiles.search([("attributes.email", "starts_with", "user1")])) == 2
    assert len(db.profiles.search([("attributes.country", "not_in", ["US"])])) == 6
    assert len(db.profiles.search([("attributes.city", "exists", False)])) == 12
    with pytest.raises(cdp.InvalidArgument) as info:
        db.profiles.search([("attributes.city", "exists", "no")])
    assert info.value.field == "conditions[0].value"


def test_search_sort_and_order(db):
    _people(db)
    page = db.profiles.search(sort="attributes.customFields.rank", order="desc", limit=3)
    assert [p["attributes"]["customFields"]["rank"] for p in page] == [11, 10, 9]
    page = db.profiles.search(sort="attributes.customFields.rank", limit=3)
    assert [p["attributes"]["customFields"]["rank"] for p in page] == [0, 1, 2]


def test_search_pages_through_everything(db):
    ids = _people(db, 12)
    seen = []
    cursor = None
    pages = 0
    while True:
        page = db.profiles.search([], limit=5, cursor=cursor)
        pages += 1
        assert len(page) <= 5
        seen.extend(p["id"] for p in page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids)
    assert seen == sorted(seen)  # default order: by id

    # next_page() / pages() follow the same cursors.
    first = db.profiles.search(limit=5)
    assert [len(p) for p in first.pages()] == [5, 5, 2]

    # search_all yields every matching profile across pages.
    us = list(db.profiles.search_all([("attributes.country", "=", "US")], page_size=2))
    assert len(us) == 6 and len({p["id"] for p in us}) == 6


def test_search_bad_operator_names_field(db):
    with pytest.raises(cdp.InvalidArgument) as info:
        db.profiles.search([("attributes.country", "~", "US")])
    assert info.value.field is not None and "operator" in info.value.field


def test_search_accepts_whole_filter_dict(db):
    _people(db)
    page = db.profiles.search(
        {"operator": "OR", "conditions": [{"field": "attributes.customFields.rank", "operator": "=", "value": 4},
                                          {"field": "attributes.customFields.rank", "operator": "=", "value": 5}]}
    )
    assert sorted(p["attributes"]["customFields"]["rank"] for p in page) == [4, 5]


def test_timeline_and_sessions(db):
    r1 = db.events.track({"type": "page_view", "email": "tl@example.com", "timestamp": "2026-01-01T10:00:00Z",
                          "properties": {"url": "/a"}})
    pid = r1["profileId"]
    db.events.track({"type": "page_view", "profileId": pid, "timestamp": "2026-01-01T10:05:00Z"})
    db.events.track({"type": "purchase", "profileId": pid, "timestamp": "2026-01-01T15:00:00Z",
                     "properties": {"revenue": 10}})
    timeline = db.profiles.timeline(pid)
    assert [e["type"] for e in timeline] == ["page_view", "page_view", "purchase"]
    assert timeline[0]["timestamp"] == "2026-01-01T10:00:00.000Z"
    purchases = db.profiles.timeline(pid, type="purchase")
    assert len(purchases) == 1 and purchases[0]["properties"]["revenue"] == 10
    newest = db.profiles.timeline(pid, order="desc", limit=1)
    assert newest[0]["type"] == "purchase" and newest.has_more
    assert len(list(db.profiles.timeline_all(pid, page_size=1))) == 3

    sessions = db.profiles.sessions(pid)
    assert isinstance(sessions, list) and len(sessions) == 2  # 5 hours apart: two sessions
    assert sessions[0]["eventCount"] == 2 and sessions[1]["eventCount"] == 1
    assert sessions[0]["start"] < sessions[1]["start"]

    with pytest.raises(cdp.NotFound):
        db.profiles.timeline("no-such-profile")
    with pytest.raises(cdp.NotFound):
        db.profiles.sessions("no-such-profile")


def test_sessions_are_a_list_with_to_pandas(db):
    pytest.importorskip("pandas")
    pid = db.profiles.create({})["id"]
    for ts in ("2026-01-01T10:00:00Z", "2026-01-01T10:10:00Z", "2026-01-01T15:00:00Z"):
        db.events.track({"type": "page_view", "profileId": pid, "timestamp": ts})
    sessions = db.profiles.sessions(pid)
    assert isinstance(sessions, list) and isinstance(sessions, cdp.Rows) and len(sessions) == 2
    frame = sessions.to_pandas()  # as pages have
    assert list(frame["eventCount"]) == [2, 1]
    assert str(frame["start"].dtype).startswith("datetime64") and frame["start"].iloc[0].hour == 10


def test_unicode_and_escapes_round_trip(db):
    attrs = {"firstName": "Zoë 🚀", "city": "Kraków", "customFields": {'we"ird\\key': "line\nbreak\ttab", "ж": [1, 2.5, None, True]}}
    created = db.profiles.create({"attributes": attrs})
    assert created["attributes"] == attrs
    assert db.profiles.get(created["id"])["attributes"] == attrs


def test_lone_surrogate_is_invalid_argument(db):
    with pytest.raises(cdp.InvalidArgument):
        db.profiles.create({"attributes": {"firstName": "bad\udc80"}})
    # In an id argument too (pybind11 alone answers TypeError: incompatible function arguments).
    for call in (lambda: db.profiles.get("\ud800"), lambda: db.profiles.delete("p\udcff"),
                 lambda: db.profiles.sessions("\ud800"), lambda: db.consent.get("\ud800")):
        with pytest.raises(cdp.InvalidArgument, match="not valid Unicode"):
            call()
    with pytest.raises(TypeError):  # other wrong arguments stay TypeError
        db.profiles.get(5)


def test_large_unsigned_integer_round_trips(db):
    created = db.profiles.create({"attributes": {"customFields": {"n": 2**63}}})
    assert created["attributes"]["customFields"]["n"] == 2**63


def test_integer_of_2_to_the_64_or_more_is_rejected_as_documented(db):
    # json.h: integer literals of 2**64 and above are rejected (simdjson cannot represent them exactly).
    with pytest.raises(cdp.InvalidArgument):
        db.profiles.create({"attributes": {"customFields": {"n": 2**70}}})
    assert db.stats()["profiles"] == 0

import datetime as dt

import pytest

import cdp

UTC = dt.timezone.utc


def test_track_returns_track_result(db):
    r = db.events.track({"type": "page_view", "email": "t@example.com", "properties": {"url": "/"}})
    assert set(r) >= {"eventId", "profileId", "sessionId", "profileCreated", "duplicate"}
    assert r["profileCreated"] is True and r["duplicate"] is False
    r2 = db.events.track({"type": "page_view", "email": "t@example.com"})
    assert r2["profileId"] == r["profileId"]
    assert r2["profileCreated"] is False
    assert r2["sessionId"] == r["sessionId"]  # within the session timeout
    assert db.profiles.get(r["profileId"])["externalIds"]["email"] == "t@example.com"


def test_duplicate_event_id_is_a_no_op(db):
    event = {"id": "evt-1", "type": "purchase", "email": "dup@example.com", "timestamp": "2026-03-01T12:00:00Z",
             "properties": {"revenue": 5}}
    first = db.events.track(event)
    again = db.events.track(event)
    assert first["duplicate"] is False and again["duplicate"] is True
    assert again["eventId"] == first["eventId"] == "evt-1"
    profile = db.profiles.get(first["profileId"])
    assert profile["computed"]["purchaseCount"] == 1
    assert profile["computed"]["ltv"] == 5


def test_computed_traits(db):
    pid = db.profiles.create({"attributes": {"email": "buyer@example.com"}})["id"]
    db.events.track({"type": "purchase", "email": "buyer@example.com", "timestamp": "2026-02-01T10:00:00Z",
                     "properties": {"revenue": 10}})
    db.events.track({"type": "purchase", "profileId": pid, "timestamp": "2026-02-03T10:00:00Z",
                     "properties": {"total": 30.5}})
    db.events.track({"type": "page_view", "profileId": pid, "timestamp": "2026-02-04T10:00:00Z"})
    computed = db.profiles.get(pid)["computed"]
    assert computed["ltv"] == pytest.approx(40.5)
    assert computed["aov"] == pytest.approx(20.25)
    assert computed["purchaseCount"] == 2
    assert computed["eventCount"] == 3
    assert computed["lastPurchaseDate"] == "2026-02-03T10:00:00.000Z"
    assert computed["firstSeenDate"] == "2026-02-01T10:00:00.000Z"
    assert computed["lastSeenDate"] == "2026-02-04T10:00:00.000Z"

    # Computed traits are searchable.
    rich = db.profiles.search([("computed.ltv", ">", 40)])
    assert [p["id"] for p in rich] == [pid]


def test_timestamp_accepts_datetime_and_epoch_ms(db):
    when = dt.datetime(2026, 5, 1, 12, 30, 0, 250000, tzinfo=UTC)
    r = db.events.track({"type": "page_view", "email": "when@example.com", "timestamp": when})
    [event] = db.events.query(profile_id=r["profileId"])
    assert event["timestamp"] == "2026-05-01T12:30:00.250Z"
    assert isinstance(event["receivedAt"], str)

    ms = int(dt.datetime(2026, 5, 2, tzinfo=UTC).timestamp() * 1000)
    r = db.events.track({"type": "page_view", "email": "ms@example.com", "timestamp": ms})
    [event] = db.events.query(profile_id=r["profileId"])
    assert event["timestamp"] == "2026-05-02T00:00:00.000Z"

    berlin = dt.timezone(dt.timedelta(hours=2))
    r = db.events.track({"type": "page_view", "email": "tz@example.com",
                         "timestamp": dt.datetime(2026, 5, 3, 14, 0, tzinfo=berlin)})
    [event] = db.events.query(profile_id=r["profileId"])
    assert event["timestamp"] == "2026-05-03T12:00:00.000Z"


def test_bad_timestamp_names_field(db):
    with pytest.raises(cdp.InvalidArgument) as info:
        db.events.track({"type": "page_view", "email": "bad@example.com", "timestamp": "yesterday"})
    err = info.value
    assert err.code == "invalid_argument"
    assert err.field == "timestamp"
    assert isinstance(err, ValueError)
    assert "timestamp" in str(err)
    assert db.stats()["events"] == 0  # nothing written


def test_invalid_events(db):
    with pytest.raises(cdp.InvalidArgument) as info:
        db.events.track({"type": "teleport", "email": "x@example.com"})
    assert info.value.field == "type"
    with pytest.raises(cdp.InvalidArgument) as info:
        db.events.track({"type": "custom", "email": "x@example.com"})  # custom needs a name
    assert info.value.field == "name"
    with pytest.raises(cdp.InvalidArgument) as info:  # not JSON: named where it is, before it reaches libcdp
        db.events.track({"type": "purchase", "email": "x@example.com", "properties": {"revenue": float("nan")}})
    assert info.value.field == "properties.revenue"
    with pytest.raises(cdp.InvalidArgument) as info:
        db.events.track_batch([{"type": "page_view", "email": "x@example.com"},
                               {"type": "purchase", "email": "x@example.com",
                                "properties": {"items": [{"price": 1.0}, {"price": float("-inf")}]}}])
    assert info.value.field == "[1].properties.items[1].price"
    with pytest.raises(cdp.InvalidArgument) as info:
        db.events.track({"type": "page_view", "email": "x@example.com", "properties": {"q": "bad \ud800 text"}})
    assert info.value.field == "properties.q"
    assert db.stats()["events"] == 0


def test_decimals_without_a_json_form_and_nesting_beyond_recursion_name_their_field(db):
    import decimal
    for bad in ("NaN", "sNaN", "Infinity", "-Infinity"):
        with pytest.raises(cdp.InvalidArgument) as info:
            db.events.track({"type": "purchase", "email": "d@example.com",
                             "properties": {"revenue": decimal.Decimal(bad)}})
        assert info.value.field == "properties.revenue", bad
    for big in (2 ** 70, -(2 ** 63) - 1, 10 ** 5000, decimal.Decimal("1e5000")):  # no 64-bit integer holds them
        with pytest.raises(cdp.InvalidArgument) as info:
            db.events.track({"type": "purchase", "email": "d@example.com", "properties": {"n": [1, big]}})
        assert info.value.field == "properties.n[1]", big
    # Each problem is named where it is, not where another is.
    for properties, field in (({"a": 2 ** 70, "b": float("nan")}, "properties.b"),
                              ({"a": 2 ** 70, "b": 10 ** 5000}, "properties.b"),
                              ({"a": decimal.Decimal("1e30"), "b": decimal.Decimal("1e5000")}, "properties.b"),
                              ({10 ** 5000: 1}, None)):
        with pytest.raises(cdp.InvalidArgument) as info:
            db.events.track({"type": "purchase", "email": "d@example.com", "properties": properties})
        if field is not None:
            assert info.value.field == field, properties.keys()
        else:  # a key no text can hold: described in the path
            assert info.value.field.startswith("properties.<integer of "), info.value.field
    deep = 1
    for _ in range(5000):  # past Python's recursion limit: json.dumps cannot even write it
        deep = {"a": deep}
    with pytest.raises(cdp.InvalidArgument) as info:
        db.events.track({"type": "page_view", "email": "d@example.com", "properties": deep})
    assert info.value.field == "properties" + ".a" * 63  # the first container deeper than 64 levels
    with pytest.raises(cdp.InvalidArgument) as info:
        db.profiles.create({"attributes": {"customFields": deep}})
    assert info.value.field.startswith("attributes.customFields.a.a")
    assert db.stats()["events"] == 0 and db.stats()["profiles"] == 0


def test_datetimes_before_1000_are_written_as_iso_8601_and_refused_as_out_of_range(db):
    with pytest.raises(cdp.InvalidArgument) as info:
        db.events.track({"type": "page_view", "email": "old@example.com", "timestamp": dt.datetime.min})
    assert "0001-01-01T00:00:00.000Z" in str(info.value) and "out of range" in str(info.value)
    assert info.value.field == "timestamp"
    assert cdp._convert.iso_utc(dt.datetime(999, 2, 3, 4, 5, 6, 7000)) == "0999-02-03T04:05:06.007Z"
    assert cdp._convert.iso_utc(dt.datetime(2026, 2, 3, 4, 5, 6, 7001)) == "2026-02-03T04:05:06.007001Z"


def test_an_item_too_deep_is_refused_alone_in_a_batch(db):
    deep = 1
    for _ in range(80):
        deep = [deep]
    r = db.events.track_batch([{"type": "page_view", "email": "deep@example.com"},
                               {"type": "page_view", "email": "deep@example.com", "properties": {"x": deep}}])
    assert [x["status"] for x in r["results"]] == ["ok", "invalid_argument"]
    assert r["results"][1]["error"]["field"].startswith("properties.x[0]")
    r = db.profiles.create_batch([{"id": "shallow"}, {"attributes": {"customFields": {"x": deep}}}])
    assert [x["status"] for x in r["results"]] == ["ok", "invalid_argument"]
    assert db.profiles.get("shallow")["id"] == "shallow"


def test_oversized_event_is_invalid_argument_naming_its_largest_member(tmp_path):
    with cdp.open(tmp_path / "db", max_event_bytes=1024) as db:
        with pytest.raises(cdp.InvalidArgument) as info:
            db.events.track({"type": "page_view", "email": "big@example.com", "properties": {"blob": "x" * 4096}})
        assert info.value.code == "invalid_argument" and info.value.field == "properties"
        assert "over the limit of 1024 bytes" in str(info.value)
        assert db.stats()["events"] == 0


def test_too_deep_json_is_invalid_argument(tmp_path):
    with cdp.open(tmp_path / "db", max_json_depth=8) as db:
        deep = {}
        node = deep
        for _ in range(20):
            node["a"] = {}
            node = node["a"]
        with pytest.raises(cdp.InvalidArgument):
            db.events.track({"type": "page_view", "email": "deep@example.com", "properties": deep})
        assert db.stats()["events"] == 0


def test_track_batch_per_item_errors(db):
    result = db.events.track_batch(
        [
            {"type": "page_view", "email": "b1@example.com"},
            {"type": "page_view", "email": "b1@example.com", "timestamp": "not a time"},
            {"type": "purchase", "email": "b2@example.com", "properties": {"revenue": 12}},
            {"type": "nope"},
        ]
    )
    assert result["accepted"] == 2
    assert result["rejected"] == 2
    items = result["results"]
    assert [item["index"] for item in items] == [0, 1, 2, 3]
    assert [item["status"] for item in items] == ["ok", "invalid_argument", "ok", "invalid_argument"]
    assert items[0]["eventId"] and items[0]["profileId"]
    assert "timestamp" in items[1]["error"]["field"]
    assert db.stats()["events"] == 2
    b2 = db.profiles.get(items[2]["profileId"])
    assert b2["computed"]["ltv"] == 12


def test_track_batch_accepts_segment_shape_and_tuples(db):
    result = db.events.track_batch({"batch": [{"type": "page_view", "email": "seg@example.com"}]})
    assert result["accepted"] == 1
    result = db.events.track_batch(({"type": "page_view", "email": "seg@example.com"} for _ in range(3)))
    assert result["accepted"] == 3


def test_track_batch_over_byte_limit_fails_whole(tmp_path):
    with cdp.open(tmp_path / "db", max_batch_bytes=2000) as db:
        events = [{"type": "page_view", "email": f"u{i}@example.com", "properties": {"pad": "y" * 100}}
                  for i in range(40)]
        with pytest.raises(cdp.InvalidArgument):
            db.events.track_batch(events)
        assert db.stats()["events"] == 0


def test_track_batch_over_item_limit_fails_whole(tmp_path):
    with cdp.open(tmp_path / "db", max_batch_items=3) as db:
        with pytest.raises(cdp.InvalidArgument):
            db.events.track_batch([{"type": "page_view", "email": "i@example.com"}] * 4)
        assert db.stats()["events"] == 0


@pytest.fixture
def shop(db):
    """Two customers' events over three days of January 2026."""
    a = db.events.track({"type": "page_view", "email": "a@example.com", "source": "web",
                         "timestamp": "2026-01-01T09:00:00Z", "properties": {"url": "/home"}})["profileId"]
    db.events.track({"type": "purchase", "profileId": a, "source": "web", "timestamp": "2026-01-02T09:00:00Z",
                     "properties": {"revenue": 20, "plan": "pro"}})
    b = db.events.track({"type": "purchase", "email": "b@example.com", "source": "pos",
                         "timestamp": "2026-01-02T12:00:00Z", "properties": {"revenue": 5, "plan": "basic"}})[
        "profileId"]
    db.events.track({"type": "custom", "name": "signup", "profileId": b, "source": "app",
                     "timestamp": "2026-01-03T08:00:00Z"})
    db.events.track({"type": "add_to_cart", "profileId": a, "source": "web", "timestamp": "2026-01-03T10:00:00Z",
                     "properties": {"sku": "X1"}})
    return db, a, b


def test_query_filters(shop):
    db, a, b = shop
    everything = db.events.query()
    assert len(everything) == 5
    stamps = [e["timestamp"] for e in everything]
    assert stamps == sorted(stamps)  # by event time

    assert [e["type"] for e in db.events.query(profile_id=a)] == ["page_view", "purchase", "add_to_cart"]
    assert {e["profileId"] for e in db.events.query(type="purchase")} == {a, b}
    assert [e["name"] for e in db.events.query(name="signup")] == ["signup"]
    assert len(db.events.query(source="web")) == 3
    assert len(db.events.query(type="purchase", source="pos")) == 1

    # since is inclusive, until exclusive; datetime, ISO strings and epoch ms all work.
    since = dt.datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    until = dt.datetime(2026, 1, 3, 8, 0, tzinfo=UTC)
    window = [e["timestamp"] for e in db.events.query(since=since, until=until)]
    assert window == ["2026-01-02T09:00:00.000Z", "2026-01-02T12:00:00.000Z"]
    assert [e["timestamp"] for e in db.events.query(since="2026-01-02T09:00:00Z", until="2026-01-03T08:00:00Z")] \
        == window
    ms = lambda d: int(d.timestamp() * 1000)  # noqa: E731
    assert [e["timestamp"] for e in db.events.query(since=ms(since), until=ms(until))] == window
    assert len(db.events.query(since=dt.date(2026, 1, 3))) == 2
    assert len(db.events.query(since=dt.datetime(2026, 1, 3, 9, 0))) == 1  # naive = UTC

    pro = db.events.query(where=[("properties.plan", "=", "pro")])
    assert [e["profileId"] for e in pro] == [a]
    assert [e["id"] for e in db.events.query(where=("properties.plan", "=", "pro"))] == [e["id"] for e in pro]
    single = db.events.query(where={"field": "properties.plan", "operator": "=", "value": "basic"})
    assert [e["profileId"] for e in single] == [b]
    either = db.events.query(where={"operator": "OR", "conditions": [("properties.plan", "=", "basic"),
                                                                      ("properties.sku", "=", "X1")]})
    assert [e["type"] for e in either] == ["purchase", "add_to_cart"]
    big = db.events.query(type="purchase", where=[{"field": "properties.revenue", "operator": ">", "value": 10}])
    assert [e["properties"]["revenue"] for e in big] == [20]

    newest_first = db.events.query(order="desc")
    assert [e["timestamp"] for e in newest_first] == list(reversed(stamps))


def test_query_paging(shop):
    db, a, b = shop
    first = db.events.query(limit=2)
    assert len(first) == 2 and first.has_more
    second = db.events.query(limit=2, cursor=first.next_cursor)
    third = second.next_page()
    assert len(second) == 2 and len(third) == 1 and third.next_cursor is None and third.next_page() is None
    ids = [e["id"] for p in (first, second, third) for e in p]
    assert len(set(ids)) == 5
    assert [e["id"] for e in db.events.query_all(page_size=2)] == ids
    assert len(list(db.events.query_all(page_size=1, type="purchase"))) == 2


def test_query_bad_arguments(db):
    with pytest.raises(cdp.InvalidArgument) as info:
        db.events.query(since="the dawn of time")
    assert info.value.field == "since"
    with pytest.raises(cdp.InvalidArgument):
        db.events.query(order="sideways")
    with pytest.raises(TypeError):
        db.events.query(since=1.5)


def test_page_object(shop):
    db, a, b = shop
    page = db.events.query(type="purchase")
    assert isinstance(page, cdp.Page)
    assert isinstance(page.items, list) and page.items == list(page)
    assert page[0] == page.items[0]
    assert "Page(2 items" in repr(page)


def test_to_pandas(shop):
    pd = pytest.importorskip("pandas")
    db, a, b = shop
    frame = db.events.query().to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 5
    assert {"id", "type", "profileId", "timestamp", "properties.revenue"} <= set(frame.columns)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2026-01-01T09:00:00Z")
    assert frame.loc[frame["type"] == "purchase", "properties.revenue"].sum() == 25

    raw = db.events.query(type="purchase").to_pandas(flatten=False, parse_dates=False)
    assert isinstance(raw["properties"].iloc[0], dict)
    assert isinstance(raw["timestamp"].iloc[0], str)

    profiles = db.profiles.search(sort="computed.ltv", order="desc").to_pandas()
    assert list(profiles["id"]) == [a, b]
    assert list(profiles["computed.ltv"]) == [20, 5]

    everything = cdp.to_pandas(db.events.query_all(page_size=2))
    assert len(everything) == 5
    assert db.events.query(type="email_open").to_pandas().empty


def test_empty_pages_to_pandas_have_the_columns_of_their_documents(shop):
    pd = pytest.importorskip("pandas")
    db, a, b = shop
    db.events.track({"profileId": a, "type": "custom", "name": "x", "deviceId": "d", "source": "web"})
    for flatten in (True, False):
        full_events = db.events.query().to_pandas(flatten=flatten)
        for empty in (db.events.query(type="email_open"), db.profiles.timeline(a, type="email_open")):
            frame = empty.to_pandas(flatten=flatten)
            assert frame.empty
            # The columns every event has: a subset of a real frame's.
            assert {"id", "profileId", "type", "timestamp", "sessionId"} <= set(frame.columns)
            assert set(frame.columns) <= set(full_events.columns)
            assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
            assert ("properties" in frame.columns) == (not flatten)
        full_profiles = db.profiles.search().to_pandas(flatten=flatten)
        frame = db.profiles.search([{"field": "id", "operator": "=", "value": "nobody"}]).to_pandas(flatten=flatten)
        assert frame.empty
        assert {"id", "createdAt", "updatedAt"} <= set(frame.columns) <= set(full_profiles.columns)
        assert ("computed.ltv" in frame.columns) == flatten
        assert str(frame["createdAt"].dtype) == "datetime64[ns, UTC]"
    # parse_dates=False leaves them untyped; a plain iterable takes its kind from the caller.
    assert str(db.events.query(type="email_open").to_pandas(parse_dates=False)["timestamp"].dtype) == "object"
    assert list(cdp.to_pandas([], kind="events").columns)[:3] == ["id", "profileId", "type"]
    assert cdp.to_pandas([]).columns.empty


def test_to_pandas_without_pandas_gives_clear_error(shop, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    db, a, b = shop
    page = db.events.query()
    with pytest.raises(ImportError, match="to_pandas\\(\\) needs pandas"):
        page.to_pandas()

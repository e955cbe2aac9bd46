import pathlib

import pytest

import cdp


def test_open_close_and_context_manager(tmp_path):
    path = tmp_path / "db"
    with cdp.open(str(path)) as db:
        assert isinstance(db, cdp.Database)
        assert not db.closed
        assert db.path == str(path)
        created = db.profiles.create({"attributes": {"email": "ctx@example.com"}})
        assert db.stats()["profiles"] == 1
    assert db.closed
    # The directory was released: it opens again, with the data in it.
    with cdp.open(path) as again:
        assert again.profiles.get(created["id"])["attributes"]["email"] == "ctx@example.com"


def test_close_is_idempotent_and_later_calls_fail(db):
    db.close()
    db.close()
    assert db.closed
    with pytest.raises(cdp.FailedPrecondition) as info:
        db.stats()
    assert info.value.code == "failed_precondition"
    with pytest.raises(cdp.FailedPrecondition):
        db.events.track({"type": "page_view", "email": "late@example.com"})


def test_second_open_of_same_path_fails(db, db_path):
    with pytest.raises(cdp.FailedPrecondition) as info:
        cdp.open(db_path)
    assert info.value.code == "failed_precondition"
    assert isinstance(info.value, cdp.Error)
    db.close()
    cdp.open(db_path).close()  # free again once closed


def test_a_directory_with_other_files_is_refused_and_left_as_it_was(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    with pytest.raises(cdp.FailedPrecondition, match="not empty") as info:
        cdp.open(home)
    assert info.value.code == "failed_precondition"
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    with pytest.raises(cdp.InvalidArgument, match="not a directory"):
        cdp.open(home / "notes.txt")


def test_pathlib_path_accepted(tmp_path):
    path = pathlib.Path(tmp_path) / "nested" / "db"
    with cdp.open(path) as db:
        assert db.path == str(path)
        assert db.stats()["profiles"] == 0
    assert path.is_dir()


def test_options_are_applied(tmp_path):
    with cdp.open(tmp_path / "db", session_timeout_seconds=60, max_page_size=7, sync_writes=True) as db:
        opts = db.options
        assert opts["session_timeout_seconds"] == 60
        assert opts["max_page_size"] == 7
        assert opts["sync_writes"] is True
        for i in range(10):
            db.profiles.create({"attributes": {"email": f"p{i}@example.com"}})
        page = db.profiles.search(limit=100)
        assert len(page) == 7  # limit clamped to max_page_size
        assert page.next_cursor is not None


def test_compress_recent_tables_is_an_option(tmp_path):
    assert cdp.default_options()["compress_recent_tables"] is False
    with cdp.open(tmp_path / "db", compress_recent_tables=True) as db:
        assert db.options["compress_recent_tables"] is True
        db.profiles.create({"id": "p1", "attributes": {"firstName": "Ada"}})
        db.flush()
    with cdp.open(tmp_path / "db") as db:  # files written either way read back
        assert db.profiles.get("p1")["attributes"]["firstName"] == "Ada"
    with pytest.raises(cdp.InvalidArgument) as info:
        cdp.open(tmp_path / "other", compress_recent_tables="yes")
    assert info.value.field == "compress_recent_tables"


def test_default_options_lists_every_option():
    defaults = cdp.default_options()
    assert defaults["session_timeout_seconds"] == 1800
    assert defaults["create_if_missing"] is True
    assert defaults["max_batch_bytes"] == 500 * 1024
    assert set(defaults) >= {"sync_writes", "max_event_bytes", "max_json_depth", "max_batch_items", "max_page_size"}


def test_unknown_option_is_invalid_argument(tmp_path):
    with pytest.raises(cdp.InvalidArgument) as info:
        cdp.open(tmp_path / "db", sesion_timeout_seconds=5)
    assert info.value.field == "sesion_timeout_seconds"


def test_option_of_wrong_type_is_invalid_argument(tmp_path):
    with pytest.raises(cdp.InvalidArgument) as info:
        cdp.open(tmp_path / "db", sync_writes="yes")
    assert info.value.field == "sync_writes"
    with pytest.raises(cdp.InvalidArgument) as info:
        cdp.open(tmp_path / "db", max_event_bytes=-1)
    assert info.value.field == "max_event_bytes"


def test_bad_option_value_rejected_by_engine(tmp_path):
    with pytest.raises(cdp.InvalidArgument):
        cdp.open(tmp_path / "db", session_timeout_seconds=0)
    with pytest.raises(cdp.InvalidArgument) as info:
        cdp.open(tmp_path / "db", max_event_future_seconds=-1)
    assert info.value.field == "max_event_future_seconds"


def test_events_far_in_the_future_are_refused_unless_the_limit_is_lifted(tmp_path):
    assert cdp.default_options()["max_event_future_seconds"] == 86400
    event = {"type": "page_view", "customerId": "c-1", "timestamp": "2099-01-01T00:00:00Z"}
    with cdp.open(tmp_path / "db") as db:
        with pytest.raises(cdp.InvalidArgument) as info:
            db.events.track(event)
        assert info.value.field == "timestamp"
    with cdp.open(tmp_path / "db", max_event_future_seconds=0) as db:
        db.events.track(event)
        assert db.stats()["events"] == 1


def test_create_if_missing_false_on_missing_directory(tmp_path):
    with pytest.raises(cdp.NotFound) as info:
        cdp.open(tmp_path / "absent", create_if_missing=False)
    assert info.value.code == "not_found"


def test_stats_counts(db):
    db.events.track({"type": "page_view", "email": "s1@example.com"})
    db.events.track({"type": "page_view", "email": "s1@example.com"})
    db.events.track({"type": "page_view", "email": "s2@example.com"})
    stats = db.stats()
    assert stats["profiles"] == 2
    assert stats["events"] == 3
    assert stats["formatVersion"] == cdp.FORMAT_VERSION


def test_flush_keeps_data(db):
    created = db.profiles.create({"attributes": {"email": "flush@example.com"}})
    db.flush()
    assert db.profiles.get(created["id"])["id"] == created["id"]


def test_version():
    assert cdp.__version__ == "0.1.0"


def test_garbage_collected_database_releases_directory(tmp_path):
    import gc

    db = cdp.open(tmp_path / "db")
    db.profiles.create({"id": "kept"})
    del db
    gc.collect()
    with cdp.open(tmp_path / "db") as again:
        assert again.profiles.get("kept")["id"] == "kept"

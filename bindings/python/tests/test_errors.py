import pickle

import pytest

import cdp
from cdp import _core

CODES = {
    "invalid_argument": cdp.InvalidArgument,
    "not_found": cdp.NotFound,
    "already_exists": cdp.AlreadyExists,
    "permission_denied": cdp.PermissionDenied,
    "failed_precondition": cdp.FailedPrecondition,
    "resource_exhausted": cdp.ResourceExhausted,
    "data_loss": cdp.DataLoss,
    "unavailable": cdp.Unavailable,
    "internal": cdp.Internal,
    "unauthenticated": cdp.Unauthenticated,
}


@pytest.mark.parametrize("code,cls", sorted(CODES.items()))
def test_every_status_code_maps_to_its_class(code, cls):
    with pytest.raises(cls) as info:
        _core._raise_status(code, "something went wrong", "a.b")
    err = info.value
    assert type(err) is cls
    assert isinstance(err, cdp.Error)
    assert err.code == code
    assert err.message == "something went wrong"
    assert err.field == "a.b"
    assert str(err) == f"{code}: something went wrong (field: a.b)"


def test_status_code_names_match_the_library():
    assert _core.status_code_name(0) == "ok"
    names = {_core.status_code_name(i) for i in range(1, 11)}
    assert names == set(CODES)


def test_empty_field_is_none():
    with pytest.raises(cdp.NotFound) as info:
        _core._raise_status("not_found", "profile x does not exist")
    assert info.value.field is None
    assert str(info.value) == "not_found: profile x does not exist"


def test_builtin_bases():
    assert issubclass(cdp.InvalidArgument, ValueError)
    assert issubclass(cdp.NotFound, LookupError)
    assert issubclass(cdp.Error, Exception)
    for cls in CODES.values():
        assert issubclass(cls, cdp.Error)


def test_errors_pickle():
    err = cdp.InvalidArgument("bad", field="timestamp")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cdp.InvalidArgument and back.field == "timestamp" and back.message == "bad"


def test_real_errors_from_engine_carry_code_and_field(db):
    with pytest.raises(cdp.InvalidArgument) as info:
        db.events.track({"type": "page_view", "email": "e@example.com", "timestamp": "2026-13-45"})
    assert (info.value.code, info.value.field) == ("invalid_argument", "timestamp")
    with pytest.raises(cdp.NotFound) as info:
        db.profiles.get("missing")
    assert info.value.code == "not_found" and "missing" in info.value.message


def test_parse_and_format_timestamp():
    import datetime as dt

    micros = cdp.parse_timestamp("2026-11-27T10:00:00.123Z")
    assert micros == int(dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000 + 123000
    assert cdp.format_timestamp(micros) == "2026-11-27T10:00:00.123Z"
    assert cdp.parse_timestamp(dt.datetime(2026, 11, 27, 10, 0, 0, 123000)) == micros
    assert cdp.parse_timestamp(micros // 1000) == micros
    with pytest.raises(cdp.InvalidArgument):
        cdp.parse_timestamp("not a date")

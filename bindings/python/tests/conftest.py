import pytest

import cdp


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "cdp-db"


@pytest.fixture
def db(db_path):
    database = cdp.open(db_path)
    try:
        yield database
    finally:
        database.close()

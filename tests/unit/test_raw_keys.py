"""Raw tables carry no PRIMARY KEY constraint: a replace checks key uniqueness itself, and refuses in one line."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from streamrec.batch.raw_load import insert_arrow, replace_raw
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall


def test_a_repeated_key_is_refused_by_name_and_the_stored_raw_is_kept(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home").ensure()
    with replace_raw(settings) as con:
        insert_arrow(con, "raw.users", pa.table({"user_id": [1, 2]}))
    repeated = r"^raw\.users: user_id 3 appears more than once$"
    with pytest.raises(StreamRecError, match=repeated), replace_raw(settings) as con:
        insert_arrow(con, "raw.users", pa.table({"user_id": [3, 4, 3]}))
    with connect(settings, read_only=True) as con:
        assert fetchall(con, "select user_id from raw.users order by 1") == [(1,), (2,)]
        constraints = fetchall(
            con, "select constraint_type from duckdb_constraints() where database_name = 'raw' order by 1"
        )
    assert ("PRIMARY KEY",) not in constraints and ("NOT NULL",) in constraints

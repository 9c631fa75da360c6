"""Facts that several layers state must agree: the log records, the ops tables, dbt staging, the event vocabulary.

Each fact has one source; where a copy cannot be derived (SQL, a migration, an OpenAPI Literal), this test
keeps it in step with the source.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec
import pytest

from streamrec.api import schemas
from streamrec.api.services import serving_logs
from streamrec.contracts.groups import CREATOR_LANGUAGES, N_CREATOR_GROUPS
from streamrec.contracts.schema import load_contract
from streamrec.core import event_types
from streamrec.core.eventlog import EventRecord, ImpressionRecord
from streamrec.core.tables import Event, Impression
from tests.paths import REPO_ROOT

DBT = REPO_ROOT / "dbt_project"


def _staged_source_columns(model: Path) -> set[str]:
    """Source columns a staging model selects: `col,` or `cast(col as type) as alias`."""
    body = model.read_text().split("renamed as (", 1)[1].split("from source", 1)[0]
    columns = set()
    for line in body.splitlines():
        line = line.strip().rstrip(",")
        if not line or line.startswith(("--", "select")):
            continue
        cast = re.match(r"cast\((\w+) as", line)
        columns.add(cast.group(1) if cast else line.split()[0])
    return columns


def _optional(record: type[msgspec.Struct]) -> set[str]:
    hints = typing.get_type_hints(record)
    return {name for name, hint in hints.items() if type(None) in typing.get_args(hint)}


@pytest.mark.parametrize(
    ("record", "table", "staging"),
    [
        (ImpressionRecord, Impression, "stg_ops__impressions.sql"),
        (EventRecord, Event, "stg_ops__events.sql"),
    ],
)
def test_log_record_table_and_staging_have_the_same_columns(record: type, table: type, staging: str) -> None:
    fields = set(record.__struct_fields__)
    columns = {column.name for column in table.__table__.columns}
    assert fields == columns
    assert _staged_source_columns(DBT / "models" / "staging" / "ops" / staging) == columns
    nullable = {column.name for column in table.__table__.columns if column.nullable}
    assert _optional(record) == nullable


def test_the_api_startup_scan_reads_fields_of_the_impression_record() -> None:
    scanned = typing.get_type_hints(serving_logs._ServedLine)
    record = typing.get_type_hints(ImpressionRecord)
    assert scanned.items() <= record.items()


def _macro_values(name: str) -> tuple[str, ...]:
    text = (DBT / "macros" / "evaluation" / "evaluation_helpers.sql").read_text()
    body = re.search(rf"macro {name}\(\) -%}}\s*\((.*?)\)\s*{{%-", text, re.S)
    assert body, name
    return tuple(v.strip().strip("'") for v in body.group(1).split(","))


def test_event_vocabulary_is_one_in_python_dbt_and_the_api() -> None:
    assert _macro_values("interaction_event_types") == event_types.INTERACTION_EVENT_TYPES
    assert _macro_values("positive_event_types") == event_types.POSITIVE_EVENT_TYPES
    assert _macro_values("click_event_types") == event_types.ENGAGED_EVENT_TYPES
    assert set(typing.get_args(schemas.EventType)) == set(event_types.API_EVENT_TYPES)
    # the training table labels with the macros, not a second list
    training = (DBT / "models" / "training" / "training_examples.sql").read_text()
    assert "streamrec.positive_event_types()" in training and "'skip'" not in training


def test_creator_groups_come_from_the_contract() -> None:
    assert tuple(load_contract()["item_creator_language_code"].codes) == CREATOR_LANGUAGES
    assert 2 * len(CREATOR_LANGUAGES) == N_CREATOR_GROUPS
    for path in (REPO_ROOT / "streamrec").rglob("*.py"):
        assert "N_GROUPS = 18" not in path.read_text(), path

"""Parsing and validation of Open Bandit Dataset CSVs: every refusal names the file, row and column."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from streamrec.batch.bandit_import import OPE_LOGGED_SCHEMA, default_dataset_name, read_obd_csv
from streamrec.core.errors import StreamRecError
from streamrec.lab.ope_synthetic import make_synthetic_logs

HEADER = ",timestamp,item_id,position,click,propensity_score,user_feature_0,user-item_affinity_0"
GOOD_ROW = "0,2019-11-24 00:00:17.318039+00:00,14,3,0,0.0125,81ce,0.0"


def _csv(tmp_path: Path, lines: list[str], name: str = "all.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_the_obd_layout_with_its_unnamed_index_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, [HEADER, GOOD_ROW, "1,2019-11-24T09:00:00+09:00,75,1,1,1.0,8c3e,2.0", ""])
    table = read_obd_csv(path, "obd_x")
    assert table.schema == OPE_LOGGED_SCHEMA
    rows = table.to_pylist()
    assert [(r["request_id"], r["position"], r["item_id"], r["reward"], r["propensity"]) for r in rows] == [
        ("obd_x-2", 3, 14, 0.0, 0.0125),
        ("obd_x-3", 1, 75, 1.0, 1.0),
    ]
    # time zones are converted to UTC wall-clock time
    assert rows[1]["logged_at"] == datetime(2019, 11, 24, 0, 0, 0)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("0,2019-11-24 00:00:17+00:00,14,3,0,0,81ce,0.0", r"row 2, column 'propensity_score': '0' is outside \(0, 1\]"),
        ("0,2019-11-24 00:00:17+00:00,14,3,0,1.5,81ce,0.0", r"column 'propensity_score': '1.5' is outside"),
        ("0,2019-11-24 00:00:17+00:00,14,3,0,nan,81ce,0.0", r"column 'propensity_score': 'nan' is outside"),
        ("0,2019-11-24 00:00:17+00:00,14,3,0,high,81ce,0.0", r"column 'propensity_score': 'high' is not a number"),
        ("0,2019-11-24 00:00:17+00:00,shoe,3,0,0.5,81ce,0.0", r"row 2, column 'item_id': 'shoe' is not an integer"),
        ("0,2019-11-24 00:00:17+00:00,14,2.5,0,0.5,81ce,0.0", r"column 'position': '2.5' is not an integer"),
        ("0,2019-11-24 00:00:17+00:00,14,0,0,0.5,81ce,0.0", r"column 'position': '0' must be >= 1"),
        ("0,2019-11-24 00:00:17+00:00,14,3,2,0.5,81ce,0.0", r"column 'click': '2' must be in \[0, 1\]"),
        ("0,yesterday,14,3,0,0.5,81ce,0.0", r"column 'timestamp': 'yesterday' is not an ISO timestamp"),
        ("0,2019-11-24 00:00:17+00:00,14,3,0,0.5", r"row 2: 6 fields, the header has 8"),
    ],
)
def test_bad_values_are_refused_with_row_and_column(tmp_path: Path, row: str, message: str) -> None:
    path = _csv(tmp_path, [HEADER, row])
    with pytest.raises(StreamRecError, match=message) as error:
        read_obd_csv(path, "obd_x")
    assert str(path) in str(error.value) and "nothing was loaded" in str(error.value)


def test_a_bad_row_after_good_ones_is_found_by_its_row_number(tmp_path: Path) -> None:
    path = _csv(tmp_path, [HEADER, GOOD_ROW, GOOD_ROW, GOOD_ROW.replace(",0.0125,", ",-0.1,")])
    with pytest.raises(StreamRecError, match=r"row 4, column 'propensity_score'"):
        read_obd_csv(path, "obd_x")


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = _csv(tmp_path, [",timestamp,item_id,click,user_feature_0", "0,2019-11-24 00:00:17+00:00,1,0,a"])
    with pytest.raises(StreamRecError, match=r"row 1: missing column\(s\) position, propensity_score"):
        read_obd_csv(path, "obd_x")


def test_empty_files_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StreamRecError, match="empty file"):
        read_obd_csv(_csv(tmp_path, [], name="empty.csv"), "obd_x")
    with pytest.raises(StreamRecError, match="no data rows"):
        read_obd_csv(_csv(tmp_path, [HEADER], name="header_only.csv"), "obd_x")
    with pytest.raises(StreamRecError, match="no such file"):
        read_obd_csv(tmp_path / "absent.csv", "obd_x")


def test_default_dataset_name_follows_the_obd_folder_layout(tmp_path: Path) -> None:
    (tmp_path / "random").mkdir()
    assert default_dataset_name(tmp_path / "random" / "all.csv") == "obd_random_all"


def test_synthetic_logs_have_valid_propensities_and_a_full_target_distribution() -> None:
    logs = make_synthetic_logs(n_rounds=500, n_items=6, seed=1)
    propensities = logs.logged.column("propensity").to_numpy()
    assert ((propensities > 0) & (propensities <= 1)).all()
    probabilities = logs.targets.column("target_probability").to_numpy().reshape(500, 6)
    assert probabilities.sum(axis=1) == pytest.approx(1.0)
    # the candidate is better than the logger, so OPE has a gap to find
    assert logs.true_value > logs.logging_value

"""RecBole atomic files: typed headers, values and keys are checked, and refusals say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.batch.raw_load import read_atomic_file
from streamrec.core.errors import StreamRecError

INTER = {"user_id": "token", "item_id": "token", "rating": "float", "timestamp": "float"}
INTER_KEY = ("user_id", "item_id", "timestamp")


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_columns_by_header_and_keeps_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "x.inter",
        "timestamp:float\titem_id:token\tuser_id:token\trating:float\textra:token",  # any order, extras ignored
        "100\t7\t1\t4\tz",
        "",
        "200\t8\t1\t2.5\tz",
    )
    data = read_atomic_file(path, INTER, key=INTER_KEY)
    assert data.columns == {
        "user_id": ["1", "1"],
        "item_id": ["7", "8"],
        "rating": [4.0, 2.5],
        "timestamp": [100.0, 200.0],
    }
    assert data.line_numbers == [2, 4]
    assert data.where(1, "rating") == "x.inter line 4, column rating"


def test_token_seq_splits_on_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, "x.item", "item_id:token\tclass:token_seq", "1\tAction Sci-Fi", "2\t")
    data = read_atomic_file(path, {"item_id": "token", "class": "token_seq"}, key=("item_id",))
    assert data.columns["class"] == [["Action", "Sci-Fi"], []]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["user_id:token\titem_id:token\ttimestamp:float", "1\t2\t3"], r"x\.inter line 1, column rating: missing"),
        (
            ["user_id:token\titem_id:token\trating:token\ttimestamp:float", "1\t2\t3\t4"],
            r"x\.inter line 1, column rating: declared as rating:token, expected rating:float",
        ),
        (["user_id\titem_id:token\trating:float\ttimestamp:float"], r"x\.inter line 1, column 1: .* not `name:type`"),
        (
            ["user_id:token\titem_id:token\trating:float\ttimestamp:float", "1\t2\t4\t100", "1\t3\tabc\t100"],
            r"x\.inter line 3, column rating: 'abc' is not a number",
        ),
        (
            ["user_id:token\titem_id:token\trating:float\ttimestamp:float", "1\t2\tnan\t100"],
            r"x\.inter line 2, column rating: 'nan' is not a finite number",
        ),
        (
            ["user_id:token\titem_id:token\trating:float\ttimestamp:float", "1\t2\t4"],
            r"x\.inter line 2: expected 4 tab-separated fields .* found 3",
        ),
        (
            ["user_id:token\titem_id:token\trating:float\ttimestamp:float", "\t2\t4\t100"],
            r"x\.inter line 2, column user_id: empty key",
        ),
        (
            [
                "user_id:token\titem_id:token\trating:float\ttimestamp:float",
                "1\t2\t4\t100",
                "5\t2\t4\t100",
                "1\t2\t3\t100",
            ],
            r"x\.inter line 4, column user_id\+item_id\+timestamp: duplicate key .*first on line 2",
        ),
        ([], r"x\.inter line 1: empty file"),
    ],
)
def test_bad_files_are_refused_naming_file_line_and_column(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write(tmp_path, "x.inter", *lines)
    with pytest.raises(StreamRecError, match=message):
        read_atomic_file(path, INTER, key=INTER_KEY)


def test_duplicate_single_column_key(tmp_path: Path) -> None:
    path = write(tmp_path, "x.user", "user_id:token\tage:token", "1\t20", "2\t30", "1\t40")
    with pytest.raises(
        StreamRecError, match=r"x\.user line 4, column user_id: duplicate key \(user_id=1\), first on line 2"
    ):
        read_atomic_file(path, {"user_id": "token", "age": "token"}, key=("user_id",))


def test_invalid_utf8_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.item"
    path.write_bytes(b"item_id:token\n1\n2\xff\n")
    with pytest.raises(StreamRecError, match=r"x\.item line 3: not valid UTF-8"):
        read_atomic_file(path, {"item_id": "token"})
    with pytest.raises(StreamRecError, match="file not found"):
        read_atomic_file(tmp_path / "absent.item", {"item_id": "token"})

"""Loading the real MovieLens-100K files, and refusing broken copies without touching the warehouse."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamrec.batch.movielens import load_movielens
from streamrec.contracts import load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.raw_schema import PRIMARY_KEYS, RAW_TABLES
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall, table_exists
from streamrec.lab.generate import generate
from tests.paths import REPO_ROOT

ML100K = Path(os.environ.get("STREAMREC_ML100K", REPO_ROOT.parent / "shared/data/ml-100k"))
pytestmark = pytest.mark.skipif(not (ML100K / "ml-100k.inter").is_file(), reason=f"MovieLens-100K not at {ML100K}")


def read_tsv(name: str) -> list[dict[str, str]]:
    with open(ML100K / name, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [field.split(":")[0] for field in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def query(settings: Settings, sql: str) -> list[tuple]:
    with connect(settings, read_only=True) as con:
        return fetchall(con, sql)


def raw_digest(settings: Settings) -> str:
    with connect(settings, read_only=True) as con:
        rows = [con.sql(f"select * from raw.{table} order by all").fetchall() for table in RAW_TABLES]
        truth = table_exists(con, "truth", "user_latent")
    return hashlib.sha256(repr((rows, truth)).encode()).hexdigest()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("ml") / "home").ensure()
    load_movielens(settings, ML100K)
    return settings


def test_counts_match_the_files(loaded: Settings) -> None:
    ratings = read_tsv("ml-100k.inter")
    counts = dict(query(loaded, "select event_type, count(*) from raw.interactions group by 1"))
    assert counts == {
        "play": len(ratings),
        "like": sum(float(r["rating"]) >= 4 for r in ratings),
        "complete": sum(float(r["rating"]) == 5 for r in ratings),
    }
    assert query(loaded, "select count(*) from raw.users")[0][0] == len(read_tsv("ml-100k.user")) == 943
    assert query(loaded, "select count(*) from raw.items")[0][0] == len(read_tsv("ml-100k.item")) == 1682
    days = {(r["user_id"], datetime.fromtimestamp(float(r["timestamp"]), UTC).date()) for r in ratings}
    assert query(loaded, "select count(*) from raw.sessions")[0][0] == len(days)
    assert len(ratings) == 100_000


def test_ratings_are_kept_on_plays_only(loaded: Settings) -> None:
    ratings = read_tsv("ml-100k.inter")
    stored = query(
        loaded,
        "select count(*) filter (where event_type = 'play' and rating is null), "
        "count(*) filter (where event_type <> 'play' and rating is not null), sum(rating), "
        "count(*) filter (where position is not null) from raw.interactions",
    )[0]
    assert stored == (0, 0, sum(float(r["rating"]) for r in ratings), 0)
    row = ratings[0]
    watch = query(
        loaded,
        f"select watch_seconds / i.length_seconds * 5 from raw.interactions join raw.items i using (item_id) "
        f"where user_id = {row['user_id']} and item_id = {row['item_id']} and event_type = 'play'",
    )
    assert watch == [(float(row["rating"]),)]


def test_users_and_items_map_to_contract_codes(loaded: Settings) -> None:
    contract = load_contract()
    genres = set(contract["item_genre_code"].codes)
    assert {r[0] for r in query(loaded, "select distinct genre_code from raw.items")} <= genres
    assert {r[0] for r in query(loaded, "select distinct age_band_code from raw.users")} <= set(
        contract["user_age_band_code"].codes
    )
    items = {r["item_id"]: r for r in read_tsv("ml-100k.item")}
    toy_story = query(loaded, "select title, genre_code, year(published_ts) from raw.items where item_id = 1")[0]
    assert toy_story == (items["1"]["movie_title"], "animation", int(items["1"]["release_year"]))
    children = [i for i, r in items.items() if r["class"].split()[0] == "Children's"]
    noir = [i for i, r in items.items() if r["class"].split()[0] == "Film-Noir"]
    assert query(loaded, f"select distinct genre_code from raw.items where item_id = {children[0]}") == [("childrens",)]
    assert query(loaded, f"select distinct genre_code from raw.items where item_id = {noir[0]}") == [("film_noir",)]
    expected = {}
    for r in read_tsv("ml-100k.user"):
        age = int(r["age"])
        bands = [(18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54")]
        band = next((b for limit, b in bands if age < limit), "55+")
        expected[int(r["user_id"])] = (band, r["gender"].lower(), "unknown", "unknown")
    stored = query(loaded, "select user_id, age_band_code, gender_code, language_code, country_code from raw.users")
    assert {row[0]: row[1:] for row in stored} == expected


def test_stand_ins_are_coherent(loaded: Settings) -> None:
    for table, key in PRIMARY_KEYS.items():
        total, distinct = query(loaded, f"select count(*), count(distinct {key}) from raw.{table}")[0]
        assert total == distinct > 0, table
    problems = query(
        loaded,
        """
        select
            count(*) filter (where i.event_ts < it.published_ts),
            count(*) filter (where i.event_ts < u.signup_ts),
            count(*) filter (where i.event_ts < s.started_ts or s.user_id <> i.user_id
                             or date_trunc('day', i.event_ts) <> date_trunc('day', s.started_ts)),
            count(*) filter (where s.duration_seconds not between 0 and 7200)
        from raw.interactions i
        join raw.items it using (item_id) join raw.users u using (user_id) join raw.sessions s using (session_id)
        """,
    )[0]
    assert problems == (0, 0, 0, 0)
    assert (
        query(
            loaded,
            "select count(*) from raw.items i join raw.creators c using (creator_id) "
            "where i.published_ts < c.created_ts",
        )[0][0]
        == 0
    )


def test_load_replaces_generated_data_and_drops_truth(settings: Settings) -> None:
    generate(settings, users=50, items=40, days=10, seed=1)
    load_movielens(settings, ML100K)
    with connect(settings, read_only=True) as con:
        assert not table_exists(con, "truth", "params")
        assert fetchall(con, "select count(*) from raw.users") == [(943,)]


def broken_copy(tmp_path: Path, name: str, line: int, text: str) -> Path:
    """A copy of the MovieLens folder with one line (1-based) of one file replaced."""
    target = tmp_path / "ml"
    shutil.copytree(ML100K, target)
    lines = (target / name).read_text(encoding="utf-8").splitlines()
    lines[line - 1] = text
    (target / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


@pytest.mark.parametrize(
    ("name", "line", "text", "message"),
    [
        (
            "ml-100k.inter",
            501,
            "196\t242\tabc\t881250949",
            r"ml-100k\.inter line 501, column rating: 'abc' is not a number",
        ),
        (
            "ml-100k.inter",
            1,
            "user_id:token\titem_id:token\ttimestamp:float",
            r"ml-100k\.inter line 1, column rating: missing",
        ),
        (
            "ml-100k.inter",
            3,
            "196\t242\t3\t881250949",
            r"ml-100k\.inter line 3, column .*duplicate key .*first on line 2",
        ),
        (
            "ml-100k.inter",
            7,
            "99999\t242\t3\t881250949",
            r"ml-100k\.inter line 7, column user_id: user_id 99999 is not in ml-100k\.user",
        ),
        ("ml-100k.inter", 9, "196\t242\t7\t881250000", r"ml-100k\.inter line 9, column rating: 7 is outside"),
        (
            "ml-100k.user",
            11,
            "1\t24\tM\ttechnician\t85711",
            r"ml-100k\.user line 11, column user_id: duplicate key \(user_id=1\), first on line 2",
        ),
        ("ml-100k.user", 4, "3\told\tM\twriter\t32067", r"ml-100k\.user line 4, column age: 'old' is not an age"),
        ("ml-100k.item", 6, "5\tCopycat\t1995\tCrime Cartoon", r"ml-100k\.item line 6, column class: genre 'Cartoon'"),
        ("ml-100k.item", 20, "2\tGoldenEye\t1995\tAction", r"ml-100k\.item line 20, column item_id: duplicate key"),
    ],
)
def test_broken_input_changes_nothing(
    settings: Settings, tmp_path: Path, name: str, line: int, text: str, message: str
) -> None:
    generate(settings, users=50, items=40, days=10, seed=1)
    before = raw_digest(settings)
    with pytest.raises(StreamRecError, match=message):
        load_movielens(settings, broken_copy(tmp_path, name, line, text))
    assert raw_digest(settings) == before

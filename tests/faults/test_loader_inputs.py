"""Issue 11 case 8: loader inputs that used to end in tracebacks are one-line errors, and nothing is stored.

`07` beside `7` (ConstraintException, then TransactionException), a 20-digit id (OverflowError),
superscript digits (`isdigit()` accepts them, `int()` does not), a 50 MB title, a NUL byte; a UTF-8 BOM
before the header is stripped and CRLF line ends are accepted (docs/data.md lists the limits).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from streamrec.batch.movielens import load_movielens
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from tests.faults.conftest import assert_one_line_error, cli, fingerprint
from tests.paths import REPO_ROOT

ML100K = Path(os.environ.get("STREAMREC_ML100K", REPO_ROOT.parent / "shared/data/ml-100k"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ML100K / "ml-100k.inter").is_file(), reason=f"MovieLens-100K not at {ML100K}"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A small generated warehouse every refused load must leave exactly as it is."""
    from streamrec.batch.migrate import init_db
    from streamrec.lab.generate import generate

    settings = Settings(home=tmp_path_factory.mktemp("loader_faults") / "home").ensure()
    init_db(settings)
    generate(settings, users=50, items=40, days=10, seed=1)
    return settings


def _copy(tmp_path: Path, name: str, edit) -> Path:
    target = tmp_path / "ml"
    shutil.copytree(ML100K, target)
    path = target / name
    path.write_bytes(edit(path.read_bytes()))
    return target


def _replace_line(number: int, text: bytes):
    def edit(data: bytes) -> bytes:
        lines = data.split(b"\n")
        lines[number - 1] = text
        return b"\n".join(lines)

    return edit


CASES = [
    ("ml-100k.user", _replace_line(3, b"07\t53\tF\tother\t94043"), "is id 7 again"),  # users 1.. : line 8 is user 7
    ("ml-100k.user", _replace_line(3, b"12345678901234567890\t53\tF\tother\t94043"), "larger than the largest id"),
    ("ml-100k.user", _replace_line(3, "2²\t53\tF\tother\t94043".encode()), "is not a non-negative integer"),
    ("ml-100k.user", _replace_line(3, "2\t5³\tF\tother\t94043".encode()), "is not an age"),
    ("ml-100k.item", _replace_line(3, b"2\t" + b"x" * 50_000_000 + b"\t1995\tAction"), "the limit is 10,000"),
    ("ml-100k.item", _replace_line(3, b"2\tGolden\0Eye\t1995\tAction"), "NUL byte"),
    ("ml-100k.inter", _replace_line(3, b"186\t302\t3\t8912505555555555555555"), "not a Unix time before 2100"),
]


@pytest.mark.parametrize(("name", "edit", "needle"), CASES)
def test_bad_loader_input_is_one_error_and_changes_nothing(
    home: Settings, tmp_path: Path, name: str, edit, needle: str
) -> None:
    before = fingerprint(home.warehouse_path)
    with pytest.raises(StreamRecError) as refused:
        load_movielens(home, _copy(tmp_path, name, edit))
    assert needle in str(refused.value) and "\n" not in str(refused.value)
    assert str(refused.value).startswith(name)  # names the file (and line, column)
    assert fingerprint(home.warehouse_path) == before


def test_duplicate_spelling_through_the_cli_is_one_line(home: Settings, tmp_path: Path) -> None:
    before = fingerprint(home.warehouse_path)
    directory = _copy(tmp_path, "ml-100k.user", _replace_line(3, b"07\t53\tF\tother\t94043"))
    done = cli(home.home, "load", "movielens", str(directory))
    assert_one_line_error(done, "ml-100k.user line", "is id 7 again")
    assert fingerprint(home.warehouse_path) == before


def test_a_bom_is_stripped_and_crlf_is_accepted(copy_home, tmp_path: Path, home: Settings) -> None:
    settings: Settings = copy_home(home.home)

    def bom_and_crlf(data: bytes) -> bytes:
        return b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n")

    summary = load_movielens(settings, _copy(tmp_path, "ml-100k.user", bom_and_crlf))
    assert "943 users" in summary

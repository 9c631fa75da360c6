"""Materialize benchmark: `streamrec materialize` over N synthetic users, the snapshot's size and memory per worker.

Run:  .venv/bin/python bench/materialize.py [--home /tmp/streamrec-bench-materialize] [--users 1000000]

1. Builds (once) a warehouse with the ops tables (alembic) and a `features.user_features` table of N
   users at one as_of with contract-valid random values (DuckDB SQL; the dbt build of a 1M-user world
   would take far longer than the thing measured).
2. Times `streamrec.batch.materialize.materialize` (query, contract validation, encoding, Arrow IPC
   write, hashing, registration) in this process: the figure the <= 10 s goal is about.
3. In a fresh child process, maps and verifies the snapshot as a serving worker does
   (`models_ml.feature_snapshot.load_snapshot`) and reports its RSS before/after, split into private
   and shared (file-backed) pages from /proc/self/smaps_rollup: the snapshot's pages are shared, so N
   workers hold one copy. Projects the file size and the per-worker private cost to 50M users.
Prints a Markdown section; docs/benchmarks.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _value_sql(feature) -> str:
    if feature.codes:
        codes = ", ".join(f"'{code}'" for code in feature.codes)
        return f"([{codes}])[1 + cast(floor(random() * {len(feature.codes)}) as integer)]"
    if feature.dtype == "bool":
        return "random() < 0.1"
    low, high = float(feature.min or 0), float(feature.max if feature.max is not None else 1)
    high = min(high, low + 100.0)  # realistic magnitudes; only the dtype and the bounds matter here
    value = f"{low} + random() * {high - low}"
    return f"cast(floor({value}) as bigint)" if feature.dtype == "int64" else value


def build(home: Path, users: int) -> None:
    """The warehouse with ops tables and N users' features at one as_of (skipped when present)."""
    from streamrec.batch.migrate import init_db
    from streamrec.contracts.schema import load_contract
    from streamrec.core.settings import Settings
    from streamrec.core.warehouse import connect

    settings = Settings(home=home).ensure()
    if settings.warehouse_path.exists():
        return
    init_db(settings)
    features = load_contract().for_entity("user")
    columns = ",\n".join(f"{_value_sql(f)} as {f.name}" for f in features)
    with connect(settings) as con:
        con.execute("create schema if not exists features")
        con.execute(
            f"create table features.user_features as select range * 7 + 1 as user_id, "
            f"timestamp '2026-12-01' as as_of, {columns} from range({users})"
        )


def mapped_memory(snapshot_dir: Path) -> dict:
    """RSS and anonymous kB of a fresh process before and after it maps and verifies the snapshot."""
    code = f"""
import json, re
def rollup():
    text = open('/proc/self/smaps_rollup').read()
    get = lambda k: int(re.search(k + r':\\s+(\\d+)', text).group(1))
    return {{'rss_kb': get('Rss'), 'anonymous_kb': get('Anonymous')}}
from pathlib import Path
import streamrec.models_ml.feature_snapshot as fs
before = rollup()
snap = fs.load_snapshot(Path({str(snapshot_dir)!r}))
for t in snap.user_features.values():
    t.sum()  # touch every page, as serving eventually does
after = rollup()
print(json.dumps({{'before': before, 'after': after, 'n_users': snap.n_users}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Build, time materialize, measure mapped memory, print the section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path("/tmp/streamrec-bench-materialize"))
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    import os
    import shutil

    from streamrec.batch.materialize import materialize
    from streamrec.core.settings import Settings

    home = args.home.resolve()
    started = time.perf_counter()
    build(home, args.users)
    print(f"warehouse ready in {time.perf_counter() - started:.1f} s", flush=True)
    shutil.rmtree(home / "snapshots", ignore_errors=True)
    os.environ["STREAMREC_HOME"] = str(home)
    settings = Settings(home=home)
    from streamrec.core.warehouse import connect

    with connect(settings) as con:
        con.execute("delete from ops.feature_snapshots")
    load = os.getloadavg()
    done = materialize(settings)
    memory = mapped_memory(done.path)
    delta_rss = memory["after"]["rss_kb"] - memory["before"]["rss_kb"]
    delta_anonymous = memory["after"]["anonymous_kb"] - memory["before"]["anonymous_kb"]
    per_million_mb = done.size_bytes / 1e6 / (done.n_users / 1e6)
    command = ".venv/bin/python " + " ".join(sys.argv)
    print(
        "\n".join(
            [
                f"`{command}` (load average before: {load[0]:.2f}, {os.cpu_count()} cores, shared machine)",
                "",
                "| figure | value |",
                "|---|---|",
                f"| users | {done.n_users:,} |",
                f"| `materialize` wall time (query, validate, encode, write, hash, register) | {done.seconds:.2f} s |",
                f"| snapshot file (Arrow IPC, uncompressed, encoded) | {done.size_bytes / 1e6:.1f} MB "
                f"({per_million_mb:.1f} MB per 1M users) |",
                f"| a worker's RSS after mapping and touching it | +{delta_rss / 1024:.1f} MB, of which anonymous "
                f"(private to the worker) +{delta_anonymous / 1024:.1f} MB; the rest is the file's pages, shared "
                "by every worker |",
                f"| projected file at 50M users | {per_million_mb * 50 / 1000:.1f} GB (page cache, once per machine) |",
            ]
        )
    )


if __name__ == "__main__":
    main()

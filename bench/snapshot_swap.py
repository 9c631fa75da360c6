"""Snapshot swap under load: two workers at 1M items x 1M users, wrk paced, two feature snapshots swapped mid-run.

Run:  .venv/bin/python bench/snapshot_swap.py [--home /tmp/streamrec-bench] [--rate 400] [--duration 20] [--workers 2]

Uses the synthetic bundle of bench/serve.py (built there if missing). Writes snapshot A from the bundle's
own user features (models_ml/feature_snapshot.write_snapshot) and serves it, then drives wrk at --rate
req/s; at a third of the run it writes snapshot B (the same users, features perturbed within the
contract, a later as_of) and calls POST /v1/admin/snapshot, which reaches one worker and is announced to
the other. Afterwards it reads every impression line: a request whose slots name two snapshots is a
mixed response. Prints errors, mixed responses, requests per snapshot and the swap call's latency.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

TOKEN = "bench-admin-token"


def write_pair(home: Path) -> tuple[str, str]:
    """Snapshots A (the bundle's user features) and B (perturbed, a day later) under home/snapshots; A is CURRENT."""
    import numpy as np
    import pyarrow.parquet as pq

    from streamrec.api.services.serving_bundle import read_active
    from streamrec.contracts.schema import load_contract
    from streamrec.core.atomic import write_json_atomically
    from streamrec.models_ml.feature_snapshot import CURRENT_FILE, read_manifest, snapshot_id_for, write_snapshot
    from streamrec.models_ml.tensors import to_tensors

    contract = load_contract()
    features = contract.for_entity("user")
    pointer = read_active(home / "artifacts")
    assert pointer is not None
    table = pq.read_table(pointer.bundle_dir / "online_features" / "user_features.parquet")
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    order = np.argsort(columns["user_id"].astype(np.int64), kind="stable")
    columns = {name: values[order] for name, values in columns.items()}
    root = home / "snapshots"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    ids = []
    for day, scale in ((1, 1.0), (2, 0.5)):
        tensors = to_tensors(columns, features, keys=("user_id",))
        for feature in features:
            if not feature.codes and feature.dtype != "bool" and scale != 1.0:
                tensors[feature.name] = tensors[feature.name] * scale  # still within [min, max] for min = 0
        as_of = datetime(2026, 12, day)
        snapshot_id = snapshot_id_for(as_of, contract.sha256)
        write_snapshot(root / snapshot_id, tensors, snapshot_id=snapshot_id, as_of=as_of, contract=contract)
        ids.append(snapshot_id)
    _, sha = read_manifest(root / ids[0])
    write_json_atomically(root / CURRENT_FILE, {"snapshot_id": ids[0], "manifest_sha256": sha, "path": ids[0]})
    return ids[0], ids[1]


def point_at(home: Path, snapshot_id: str) -> None:
    """CURRENT.json -> snapshot_id (what `streamrec materialize` does last)."""
    from streamrec.core.atomic import write_json_atomically
    from streamrec.models_ml.feature_snapshot import CURRENT_FILE, read_manifest

    _, sha = read_manifest(home / "snapshots" / snapshot_id)
    write_json_atomically(
        home / "snapshots" / CURRENT_FILE, {"snapshot_id": snapshot_id, "manifest_sha256": sha, "path": snapshot_id}
    )


def main() -> None:
    """Serve, load, swap, count."""
    import serve as bench_serve

    from streamrec.lab.server_process import ApiProcess

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path("/tmp/streamrec-bench"))
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=400)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    wrk = bench_serve.require_wrk()
    home = args.home.resolve()
    bench_serve.build(home, args.items, args.users)
    first, second = write_pair(home)
    shutil.rmtree(home / "logs", ignore_errors=True)
    env = {"STREAMREC_HOLDOUT_SHARE": "0", "STREAMREC_ADMIN_TOKEN": TOKEN}
    server = ApiProcess(home, env=env, log=home / "bench-swap-server.log", workers=args.workers)
    swap: dict = {}
    try:
        server.start(timeout=600)
        pid = server.process.pid
        workers = {str(child) for child in bench_serve._children(pid)}
        deadline = time.monotonic() + 600
        while len(bench_serve._serving_pids(home) & workers) < args.workers and time.monotonic() < deadline:
            httpx.get(f"{server.url}/v1/recommendations", params={"user_id": 1}, timeout=30)
            time.sleep(0.2)

        def swap_later() -> None:
            time.sleep(args.duration / 3)
            point_at(home, second)
            started = time.perf_counter()
            answer = httpx.post(
                f"{server.url}/v1/admin/snapshot", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
            )
            swap.update(status=answer.status_code, seconds=time.perf_counter() - started, body=answer.json())

        thread = threading.Thread(target=swap_later)
        thread.start()
        connections = bench_serve.paced_connections(args.rate)
        result = bench_serve.run_wrk(wrk, server.url, args.users, connections, args.duration, pid, args.rate)
        thread.join()
    finally:
        server.stop()
    per_request: dict[str, set] = defaultdict(set)
    for path in (home / "logs" / "impressions").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                per_request[row["request_id"]].add(row["snapshot_id"])
    mixed = sum(1 for ids in per_request.values() if len(ids) != 1)
    counts: dict[str, int] = defaultdict(int)
    for ids in per_request.values():
        for snapshot_id in ids:
            counts[snapshot_id] += 1
    command = ".venv/bin/python " + " ".join(sys.argv)
    print(
        "\n".join(
            [
                f"`{command}`",
                "",
                "| figure | value |",
                "|---|---|",
                f"| workers, paced rate (achieved) | {args.workers}, {args.rate:g} req/s ({result['achieved']:.0f}) |",
                f"| wrk errors (connect, read, write, timeout, non-2xx) | {result['errors']} {result['error_kinds']} |",
                f"| requests logged | {len(per_request)} |",
                f"| mixed responses (slots naming two snapshots) | {mixed} |",
                f"| requests per snapshot | {first}: {counts[first]}, {second}: {counts[second]} |",
                f"| swap call (verify + map + compose on one worker) | {swap.get('status')} in "
                f"{swap.get('seconds', float('nan')):.2f} s |",
                f"| p50 / p99 / max latency over the run | {result['p50_ms']:.1f} / {result['p99_ms']:.1f} / "
                f"{result['max_ms']:.1f} ms |",
            ]
        )
    )


if __name__ == "__main__":
    main()

"""Issue 14 on real servers over loopback: feature snapshots swapped under load, and several workers sharing state."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import pytest

from streamrec.api.services.assignment import routes_to_candidate
from streamrec.api.services.serving_bundle import load_serving_bundle
from streamrec.batch.materialize import materialize
from streamrec.core.atomic import write_json_atomically
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall
from streamrec.models_ml.feature_snapshot import CURRENT_FILE, MANIFEST_FILE, USER_FILE
from streamrec.models_ml.registry import promote
from streamrec.models_ml.train import train
from tests.e2e.conftest import ADMIN_TOKEN, E2E_VERSION, ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _as_ofs(settings: Settings) -> list:
    with connect(settings, read_only=True) as con:
        return [row[0] for row in fetchall(con, "select distinct as_of from features.user_features order by as_of")]


def _impressions(home: Path) -> list[dict]:
    lines = []
    for path in sorted((home / "logs" / "impressions").glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return lines


def _swap(api: ApiServer) -> httpx.Response:
    return httpx.post(f"{api.url}/v1/admin/snapshot", headers=AUTH, timeout=60)


def test_a_snapshot_swaps_in_under_load_and_every_response_reads_one(served_copy: Settings) -> None:
    older, latest = _as_ofs(served_copy)[-2:]
    first = materialize(served_copy, as_of=older)
    api = ApiServer(served_copy.home).start()
    responses: list[tuple[int, dict | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            user = 0
            while not stop.is_set():
                user = (user + 7) % 300
                answer = client.get("/v1/recommendations", params={"user_id": user, "k": 10})
                responses.append((answer.status_code, answer.json() if answer.status_code == 200 else None))

    threads = [threading.Thread(target=load) for _ in range(3)]
    try:
        assert httpx.get(f"{api.url}/v1/recommendations", params={"user_id": 1}).json()["snapshot_id"] == (
            first.snapshot_id
        )
        for thread in threads:
            thread.start()
        while len(responses) < 100:
            threading.Event().wait(0.05)
        second = materialize(served_copy, as_of=latest)
        swapped = _swap(api)
        assert swapped.status_code == 200, swapped.text
        assert swapped.json()["previous_snapshot_id"] == first.snapshot_id and swapped.json()["changed"]
        before = len(responses)
        while len(responses) < before + 100:
            threading.Event().wait(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        api.stop()
    assert second.snapshot_id != first.snapshot_id
    assert [status for status, _ in responses if status != 200] == []
    ids = [body["snapshot_id"] for _, body in responses if body is not None]
    assert set(ids) == {first.snapshot_id, second.snapshot_id}
    assert ids[-1] == second.snapshot_id
    # Not one mixed response: every slot of a request was logged with the snapshot the response names.
    logged: dict[str, set] = defaultdict(set)
    for line in _impressions(served_copy.home):
        logged[line["request_id"]].add(line["snapshot_id"])
        assert line["feature_age_seconds"] > 0
    for _, body in responses:
        assert body is not None and logged[body["request_id"]] == {body["snapshot_id"]}


def test_a_refused_snapshot_keeps_the_old_one_serving(served_copy: Settings) -> None:
    older, latest = _as_ofs(served_copy)[-2:]
    serving = materialize(served_copy, as_of=older)
    api = ApiServer(served_copy.home).start()
    root = served_copy.home / "snapshots"
    try:
        fresh = materialize(served_copy, as_of=latest)
        # 1. a flipped byte in the feature file: its sha256 no longer matches the manifest
        damaged = root / "damaged"
        shutil.copytree(fresh.path, damaged)
        data = bytearray((damaged / USER_FILE).read_bytes())
        data[-100] ^= 0xFF
        (damaged / USER_FILE).write_bytes(bytes(data))
        current = json.loads((root / CURRENT_FILE).read_text())
        write_json_atomically(root / CURRENT_FILE, {**current, "path": "damaged"})
        refused = _swap(api)
        assert refused.status_code == 409 and "does not match its manifest" in refused.json()["detail"]
        # 2. a snapshot written for another contract (its manifest and pointer consistent, the hash foreign)
        other = root / "other-contract"
        shutil.copytree(fresh.path, other)
        manifest = json.loads((other / MANIFEST_FILE).read_text())
        write_json_atomically(other / MANIFEST_FILE, {**manifest, "contract_sha256": "0" * 64})
        import hashlib

        sha = hashlib.sha256((other / MANIFEST_FILE).read_bytes()).hexdigest()
        write_json_atomically(root / CURRENT_FILE, {**current, "path": "other-contract", "manifest_sha256": sha})
        refused = _swap(api)
        assert refused.status_code == 409 and "contract" in refused.json()["detail"]
        page = httpx.get(f"{api.url}/v1/recommendations", params={"user_id": 3}).json()
        assert page["snapshot_id"] == serving.snapshot_id
        # the good one still swaps in afterwards
        write_json_atomically(root / CURRENT_FILE, current)
        assert _swap(api).json()["snapshot_id"] == fresh.snapshot_id
    finally:
        api.stop()


def _serving_snapshot(api: ApiServer, want: str, seconds: float = 30.0) -> str:
    """The snapshot id pages carry, polled until it is `want` or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        seen = httpx.get(f"{api.url}/v1/recommendations", params={"user_id": 3}).json()["snapshot_id"]
        if seen == want or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def test_the_snapshot_watch_swaps_without_an_admin_call_and_skips_a_refused_one(served_copy: Settings) -> None:
    older, latest = _as_ofs(served_copy)[-2:]
    root = served_copy.home / "snapshots"
    second = materialize(served_copy, as_of=latest)
    second_pointer = json.loads((root / CURRENT_FILE).read_text())
    first = materialize(served_copy, as_of=older)  # CURRENT.json now names the older one
    api = ApiServer(served_copy.home, env={"STREAMREC_SNAPSHOT_WATCH_SECONDS": "0.2"}).start()
    try:
        assert _serving_snapshot(api, first.snapshot_id) == first.snapshot_id
        # a pointer to a damaged copy of the newer snapshot: refused by the watch, the first keeps serving
        damaged = root / "damaged"
        shutil.copytree(second.path, damaged)
        data = bytearray((damaged / USER_FILE).read_bytes())
        data[-100] ^= 0xFF
        (damaged / USER_FILE).write_bytes(bytes(data))
        write_json_atomically(root / CURRENT_FILE, {**second_pointer, "path": "damaged"})
        time.sleep(1.5)  # several ticks
        assert _serving_snapshot(api, first.snapshot_id, seconds=0) == first.snapshot_id
        # the intact newer snapshot is picked up with no admin call
        write_json_atomically(root / CURRENT_FILE, second_pointer)
        assert _serving_snapshot(api, second.snapshot_id) == second.snapshot_id
    finally:
        api.stop()
    assert "does not match its manifest" in api.log.read_text(errors="replace")


def _group_exposure(lines: list[dict], groups_of) -> np.ndarray:
    personalised = [line for line in lines if line["policy"] == "personalized"]
    items = np.array([line["item_id"] for line in personalised], dtype=np.int64)
    weights = 1.0 / np.log2(1.0 + np.array([line["position"] for line in personalised], dtype=np.float64))
    return np.bincount(groups_of(items), weights=weights, minlength=18)


def test_two_workers_share_exposure_deficits(served_copy: Settings, tmp_path: Path) -> None:
    """Worker A (no re-rank) starves groups; B, sharing A's counters, serves them more than C, which does not."""
    deterministic = {"STREAMREC_EXPLORATION": "none", "STREAMREC_HOLDOUT_SHARE": "0", "STREAMREC_SEED": "1"}
    shared = str(tmp_path / "shared.state")
    bundle = load_serving_bundle(served_copy.home / "artifacts" / E2E_VERSION)

    def groups_of(items: np.ndarray) -> np.ndarray:
        return bundle.item_groups[bundle.item_rows(items)]

    homes = {}
    for name in ("shared", "alone"):
        homes[name] = tmp_path / name
        shutil.copytree(served_copy.home, homes[name])
    a = ApiServer(
        homes["shared"], env={**deterministic, "STREAMREC_SHARED_STATE": shared, "STREAMREC_FAIRNESS_CAP": "0"}
    )
    b = ApiServer(homes["shared"], env={**deterministic, "STREAMREC_SHARED_STATE": shared})
    c = ApiServer(homes["alone"], env=deterministic)
    try:
        for api in (a, b, c):  # all up before any traffic: B learns of A's pages only through the shared counters
            api.start()
        for user in range(200):
            assert httpx.get(f"{a.url}/v1/recommendations", params={"user_id": user}).status_code == 200
        starved_by_a = _group_exposure(_impressions(homes["shared"]), groups_of)
        for user in range(200, 260):
            assert httpx.get(f"{b.url}/v1/recommendations", params={"user_id": user}).status_code == 200
            assert httpx.get(f"{c.url}/v1/recommendations", params={"user_id": user}).status_code == 200
    finally:
        for api in (a, b, c):
            api.stop()
    by_b = _group_exposure(_impressions(homes["shared"]), groups_of) - starved_by_a
    by_c = _group_exposure(_impressions(homes["alone"]), groups_of)
    present = bundle.group_sizes > 0
    share_a = starved_by_a / starved_by_a.sum()
    catalogue = bundle.group_sizes / bundle.group_sizes.sum()
    # the groups A left furthest below their catalogue share
    normalised = np.where(present, share_a / np.where(present, catalogue, 1), np.inf)
    starved = np.argsort(normalised)[:3]
    assert by_b[starved].sum() / by_b.sum() > 1.2 * by_c[starved].sum() / by_c.sum()


def test_canary_shares_hold_across_two_workers(served_copy: Settings) -> None:
    train(served_copy, epochs=1, seed=5, version="e2e-v2")  # registered, not promoted: the candidate
    api = ApiServer(served_copy.home, workers=2).start()
    share = 0.3
    try:
        started = httpx.post(
            f"{api.url}/v1/admin/canary",
            headers=AUTH,
            json={"action": "start", "candidate_version": "e2e-v2", "phase": 1, "share": share},
            timeout=120,
        )
        assert started.status_code == 200, started.text
        # The other worker follows within the sync interval plus its bundle load: poll until the routing of
        # every user matches, or 60 s pass (then the assertions below say what differed).
        deadline = time.monotonic() + 60
        while True:
            served = {}
            for user in range(300):  # a new connection each: the kernel spreads them over both workers
                served[user] = httpx.get(f"{api.url}/v1/recommendations", params={"user_id": user}).json()
            routed = {u for u, page in served.items() if page["model_version"] == "e2e-v2"}
            if routed == {u for u in served if routes_to_candidate(u, share, "canary-v1")}:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        api.stop()
    pids = {path.stem.rsplit("-", 1)[1] for path in (served_copy.home / "logs" / "impressions").glob("*.jsonl")}
    assert len(pids) == 2  # both workers served
    expected = {u: routes_to_candidate(u, share, "canary-v1") for u in served}
    assert {u for u, page in served.items() if page["model_version"] == "e2e-v2"} == {u for u in served if expected[u]}
    assert abs(np.mean([page["model_version"] == "e2e-v2" for page in served.values()]) - share) < 0.08


def test_promote_reload_reaches_every_worker(served_copy: Settings) -> None:
    train(served_copy, epochs=1, seed=6, version="e2e-v3")
    api = ApiServer(served_copy.home, workers=2).start()
    try:
        promote(served_copy, version="e2e-v3", by="e2e", reason="workers follow")
        assert httpx.post(f"{api.url}/v1/admin/reload", headers=AUTH, timeout=120).json()["version"] == "e2e-v3"
        # The other worker follows within the sync interval plus its bundle load: poll (a new connection per
        # request, so the kernel spreads them over both workers) rather than assume how busy the machine is.
        deadline = time.monotonic() + 60
        while True:
            versions = {
                httpx.get(f"{api.url}/v1/recommendations", params={"user_id": u}).json()["model_version"]
                for u in range(60)
            }
            if versions == {"e2e-v3"} or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        api.stop()
    assert versions == {"e2e-v3"}


def test_an_event_reaches_another_worker_than_its_page(served_copy: Settings, tmp_path: Path) -> None:
    """A page served by A, its event posted to B (a new connection can land on any worker): B attributes it."""
    from datetime import UTC, datetime

    shared = str(tmp_path / "shared.state")
    a = ApiServer(served_copy.home, env={"STREAMREC_SHARED_STATE": shared})
    b = ApiServer(served_copy.home, env={"STREAMREC_SHARED_STATE": shared})
    alone = ApiServer(served_copy.home)  # same home, no shared file: knows only its own requests
    try:
        for api in (a, b, alone):
            api.start()
        page = httpx.get(f"{a.url}/v1/recommendations", params={"user_id": 4}).json()
        event = {
            "request_id": page["request_id"],
            "item_id": page["items"][0]["item_id"],
            "event_type": "play",
            "event_ts": datetime.now(UTC).isoformat(),
        }
        refused = httpx.post(f"{alone.url}/v1/events", json={"events": [event]})
        accepted = httpx.post(f"{b.url}/v1/events", json={"events": [event]})
    finally:
        for api in (a, b, alone):
            api.stop()
    assert refused.status_code == 422 and page["request_id"] in refused.text
    assert accepted.status_code in (200, 201, 202), accepted.text
    events = [
        json.loads(line)
        for path in (served_copy.home / "logs" / "events").glob("*.jsonl")
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    assert [(e["request_id"], e["user_id"]) for e in events] == [(page["request_id"], 4)]

"""Serving benchmark: 1M items x 1M users, latency and throughput over HTTP vs the same path in process.

Run:  .venv/bin/python bench/serve.py [--home /tmp/streamrec-bench] [--items 1000000] [--users 1000000]
      [--rates 100,200,300] [--concurrencies 1,4,16] [--duration 20] [--fsync-modes interval,always]

Needs wrk (`apt-get install wrk`, `brew install wrk`) as the load driver.

1. Builds (once; reused if present) a synthetic bundle with `api.synthetic.write_synthetic_bundle`:
   a real TwoTower and Ranker with RANDOM weights, random contract-valid features, item embeddings
   from the clustered generator (`models_ml.synthetic_embeddings`, calibrated on a trained bundle;
   a random tower's embeddings have no realistic structure) and the index `models_ml.index.build_index`
   picks for them (IVF at 1M items).
   Latency does not depend on the weights being trained; recommendation quality is meaningless.
2. In process: loads the bundle as the server does and times `Recommender.recommend` (features ->
   user tower -> FAISS top-500 -> ranker -> re-rank -> exploration) and `record_served` (the exposure
   the server counts after logging the page) for random users, plus a per-stage
   breakdown (user tower, FAISS search, ranker, rest).
3. For every impression-log mode in --fsync-modes (STREAMREC_LOG_FSYNC: `interval` writes each impression
   before the response and fdatasyncs in the background every STREAMREC_LOG_FSYNC_INTERVAL_MS; `always`
   fdatasyncs before every response, group commit; `off` never does, a baseline) starts `streamrec serve`
   (holdout off, so every request is personalized as in step 2), warms it up with 2 s of closed
   loop, then drives GET /v1/recommendations for uniformly random users with wrk (C; `bench/wrk/random_users.lua`),
   always one driver thread (-t1) so that the second core stays with the server:
   - paced levels (--rates): closed loop WITH think time. wrk has no true open loop (wrk2 has, but is not
     packaged in Debian), so max(32, ceil(0.25 * rate)) connections each wait an exponential think time with
     mean connections / rate before every request; Poisson think times over many connections approximate a
     Poisson arrival process at the target rate as long as the latency is far below the think time. Once the
     server saturates the connections wait for it instead, so the ACHIEVED rate (requests / duration) is
     reported next to the target and a level that fell short did not measure latency at the target rate.
   - closed-loop levels (--concurrencies): N connections, each sends its next request when the answer arrives.
   Per level also the server's CPU time per request (utime + stime of its process from /proc/<pid>/stat,
   all threads, before and after the level) and wrk's (getrusage of waited-for children).
4. Rewrites the "Serving" section of docs/benchmarks.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np

if TYPE_CHECKING:
    from streamrec.api.services.recommender import Recommender
    from streamrec.api.services.serving_bundle import ServingBundle

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- serving:start -->", "<!-- serving:end -->"
WRK_SCRIPT = REPO / "bench" / "wrk" / "random_users.lua"
WRK_MARKER = "WRK_JSON "  # prefix of the one JSON line the script's done() prints
# STREAMREC_LOG_FSYNC values (api.config) and what each promises, for the doc; the first two run by default.
FSYNC_MODES = {
    "interval": "writes every impression to the kernel before the response and a background thread fdatasyncs "
    "every `STREAMREC_LOG_FSYNC_INTERVAL_MS` ({interval_ms} ms)",
    "always": "fdatasyncs before every response (group commit)",
    "off": "never fdatasyncs (a benchmark baseline, not for production)",
}
DEFAULT_FSYNC_MODES = "interval,always"
DEFAULT_FSYNC = "interval"  # the server's default STREAMREC_LOG_FSYNC: the goals are judged in this mode
WARMUP_SECONDS = 2
WARMUP_CONNECTIONS = 4
IN_PROCESS_REQUESTS = 2000  # enough for a p99.9 that is not just the maximum of a few hundred
STAGE_USERS = 500  # of those, timed again stage by stage


def build(home: Path, items: int, users: int) -> float:
    """Write the synthetic bundle and ACTIVE.json unless they exist; return build seconds (0 if reused)."""
    from streamrec.lab.synthetic_bundle import write_active_pointer, write_synthetic_bundle

    version = f"synthetic-clustered-{items}"
    if (home / "artifacts" / version / "manifest.json").exists():
        write_active_pointer(home / "artifacts", version)
        return 0.0
    started = time.perf_counter()
    write_synthetic_bundle(
        home / "artifacts", version, n_users=users, n_items=items, seed=11, item_embeddings="clustered"
    )
    write_active_pointer(home / "artifacts", version)
    return time.perf_counter() - started


def in_process(home: Path, users: int, n: int) -> dict:
    """Time the request path without HTTP: Recommender.recommend on the active bundle, one thread.

    Also the process CPU time per call and `stage_breakdown` on the first `STAGE_USERS` of the same users.
    """
    import faiss
    import torch

    from streamrec.api.config import ApiSettings
    from streamrec.api.services.fairness import ExposureTracker
    from streamrec.api.services.recommender import Recommender
    from streamrec.api.services.serving_bundle import load_serving_bundle, read_active

    # The server limits torch and FAISS to one thread per call (api.app); the same here, so the paths compare.
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    pointer = read_active(home / "artifacts")
    started = time.perf_counter()
    bundle = load_serving_bundle(pointer.bundle_dir)
    load_seconds = time.perf_counter() - started
    config = ApiSettings.from_env({"STREAMREC_HOME": str(home), "STREAMREC_HOLDOUT_SHARE": "0"})
    recommender = Recommender(config, ExposureTracker())
    rng = np.random.default_rng(0)
    for user in rng.integers(1, users + 1, 20):  # warm-up
        recommender.record_served(bundle, recommender.recommend(bundle, int(user), 10))
    sample = [int(u) for u in rng.integers(1, users + 1, n)]
    times = []
    cpu_started = time.process_time()
    for user in sample:
        t = time.perf_counter()
        # record_served too: the server counts every logged page as exposure, and the re-rank's work depends on it
        recommender.record_served(bundle, recommender.recommend(bundle, user, 10))
        times.append((time.perf_counter() - t) * 1000)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / n
    stage_users = sample[:STAGE_USERS]
    stages = stage_breakdown(bundle, recommender, stage_users)
    stages["users"] = len(stage_users)
    return {
        "load_seconds": load_seconds,
        "p50_ms": float(np.percentile(times, 50)),
        "p90_ms": float(np.percentile(times, 90)),
        "p99_ms": float(np.percentile(times, 99)),
        "p999_ms": float(np.percentile(times, 99.9)),
        "mean_ms": float(np.mean(times)),
        "cpu_ms": cpu_ms,
        "n": n,
        "index_kind": bundle.index_kind,
        "retrieval_k": min(config.retrieval_k, bundle.n_items),
        "stages": stages,
    }


def stage_breakdown(bundle: ServingBundle, recommender: Recommender, users: list[int]) -> dict[str, float]:
    """Mean ms per stage of the personalized path, timed inside the same calls (so the stages add up).

    Calls the steps `Recommender.personalized` is made of (`Recommender.candidates`, then `page`) with
    a clock between them. Cold-start users (no feature row) are skipped.
    """
    totals = {"user_tower_ms": 0.0, "faiss_ms": 0.0, "ranker_ms": 0.0, "rest_ms": 0.0}
    timed = 0
    for user_id in users:
        row = bundle.user_row(user_id)
        if row is None:
            continue
        t0 = time.perf_counter()
        user_batch, query = recommender.user_query(bundle, user_id, row)
        t1 = time.perf_counter()
        rows, retrieval = recommender.retrieve(bundle, query)
        t2 = time.perf_counter()
        rows, retrieval = recommender.reach_lagging_groups(bundle, query, rows, retrieval)
        t3 = time.perf_counter()
        ranked_rows, ranked_scores = recommender.rank(bundle, user_batch, rows, retrieval)
        t4 = time.perf_counter()
        recommender.page(bundle, ranked_rows, ranked_scores, 10)
        t5 = time.perf_counter()
        totals["user_tower_ms"] += (t1 - t0) * 1000
        totals["faiss_ms"] += (t2 - t1) * 1000
        totals["ranker_ms"] += (t4 - t3) * 1000
        totals["rest_ms"] += ((t3 - t2) + (t5 - t4)) * 1000
        timed += 1
    stages = {name: value / max(timed, 1) for name, value in totals.items()}
    stages["total_ms"] = sum(stages.values())
    return stages


def _server_stack() -> str:
    """Event loop and HTTP parser `streamrec serve` uses here (uvloop + httptools when installed)."""
    import importlib.util

    fast = (
        importlib.util.find_spec("uvloop") is not None
        and importlib.util.find_spec("httptools") is not None
        and os.environ.get("STREAMREC_SERVE_PURE_PYTHON", "0") != "1"
    )
    return "uvloop + httptools" if fast else "asyncio + h11"


def require_wrk() -> str:
    """Path of the wrk binary; exit with an install hint when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
    return path


def paced_connections(rate: float) -> int:
    """Connections for a paced level: enough that each one's think time (connections / rate) dwarfs the latency.

    At 0.25 s of mean think time per connection a few-ms response barely delays the next arrival; 32 at least so
    that low rates still mix many independent Poisson streams.
    """
    return max(32, math.ceil(rate * 0.25))


def _serving_pids(home: Path) -> set[str]:
    """Pids of the workers that have written impressions (a segment's name ends in its writer's pid)."""
    segments = (home / "logs" / "impressions").glob("*.jsonl")
    return {path.stem.rsplit("-", 1)[1] for path in segments if path.stat().st_size > 0}


def _children(pid: int) -> list[int]:
    """Live child pids of `pid` (uvicorn's workers under `--workers N`)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live children (all threads), from /proc/<pid>/stat, in seconds."""
    return _own_cpu_seconds(pid) + sum(_own_cpu_seconds(child) for child in _children(pid))


def _own_cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # exited between listing and reading
        return 0.0
    # The command name (field 2) is in parentheses and may contain spaces: count fields after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[14 - 3]), int(fields[15 - 3])  # fields 14 and 15, numbered from 1, after pid and comm
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's terminated, waited-for children (wrk once `run()` returns)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    wrk: str, url: str, users: int, connections: int, duration: int, server_pid: int, rate: float | None = None
) -> dict:
    """One wrk run (-t1, closed loop, or paced at `rate` req/s when given); counts, latency and CPU per request."""
    env = {**os.environ, "USERS": str(users)}
    if rate is not None:
        env |= {"RATE": f"{rate:g}", "CONNS": str(connections)}
    else:  # an inherited RATE would silently turn a closed-loop level into a paced one
        env.pop("RATE", None)
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(WRK_SCRIPT), url]
    server_before = cpu_seconds(server_pid)
    # RUSAGE_CHILDREN counts only children already waited for: the running server is not in it, wrk is after run().
    children_before = _children_cpu_seconds()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    driver_cpu = _children_cpu_seconds() - children_before
    server_cpu = cpu_seconds(server_pid) - server_before
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(WRK_MARKER)), None)
    if out.returncode != 0 or line is None:
        # wrk reports Lua errors on stderr and still exits 0; without our line the run cannot be trusted
        raise SystemExit(f"wrk failed (exit {out.returncode}): {' '.join(command)}\n{out.stderr.strip()}\n{out.stdout}")
    raw = json.loads(line[len(WRK_MARKER) :])
    requests = raw["requests"]
    latency = raw["latency_us"]
    return {
        "mode": "rate" if rate is not None else "concurrency",
        "value": rate if rate is not None else connections,
        "connections": connections,
        "requests": requests,
        "errors": sum(raw["errors"].values()),
        "error_kinds": {kind: count for kind, count in raw["errors"].items() if count},
        "duration_s": raw["duration_us"] / 1e6,
        "achieved": requests / (raw["duration_us"] / 1e6),
        "p50_ms": latency["p50"] / 1000,
        "p90_ms": latency["p90"] / 1000,
        "p99_ms": latency["p99"] / 1000,
        "p999_ms": latency["p99.9"] / 1000,
        "max_ms": latency["max"] / 1000,
        "server_cpu_ms": server_cpu * 1000 / max(requests, 1),
        "driver_cpu_ms": driver_cpu * 1000 / max(requests, 1),
    }


def over_http(
    home: Path,
    users: int,
    duration: int,
    rates: list[float],
    concurrencies: list[int],
    fsync_modes: list[str],
    workers: int = 1,
) -> tuple[list[dict], dict[str, float]]:
    """Per fsync mode: start the server, warm it up, run every load level with wrk, stop it.

    Returns the level results (each tagged with its `fsync` mode) and the server's start-to-ready seconds per mode.
    """
    from streamrec.lab.server_process import ApiProcess

    wrk = require_wrk()
    results: list[dict] = []
    ready: dict[str, float] = {}
    for mode in fsync_modes:
        # Holdout off as in `in_process`: every request takes the personalized path, so the two compare.
        env = {"STREAMREC_LOG_FSYNC": mode, "STREAMREC_HOLDOUT_SHARE": "0"}
        server = ApiProcess(home, env=env, log=home / "bench-server.log", workers=workers)
        started = time.perf_counter()
        try:
            server.start()
            ready[mode] = time.perf_counter() - started
            pid = server.process.pid
            if workers > 1:  # health answers once one worker is up; each worker serves only after its lifespan
                deadline = time.monotonic() + 600
                workers_pids = {str(child) for child in _children(pid)}
                while len(_serving_pids(home) & workers_pids) < workers and time.monotonic() < deadline:
                    httpx.get(f"{server.url}/v1/recommendations", params={"user_id": 1}, timeout=30)  # new connection
                    time.sleep(0.2)
                ready[mode] = time.perf_counter() - started
            print(f"server ready (log fsync {mode}) in {ready[mode]:.1f} s; warming up", flush=True)
            # Not recorded: first requests pay for lazy initialisation (thread pool, allocator, page cache).
            run_wrk(wrk, server.url, users, WARMUP_CONNECTIONS, WARMUP_SECONDS, pid)
            levels = [(paced_connections(r), r) for r in rates] + [(c, None) for c in concurrencies]
            for connections, rate in levels:
                result = {"fsync": mode, **run_wrk(wrk, server.url, users, connections, duration, pid, rate)}
                print(json.dumps(result), flush=True)
                results.append(result)
        finally:
            server.stop()
    return results, ready


def write_section(text: str) -> None:
    """Replace (or append) the Serving section of docs/benchmarks.md, leaving other sections alone."""
    block = f"{START}\n{text.rstrip()}\n{END}\n"
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in current and END in current:
        current = re.sub(re.escape(START) + r".*?" + re.escape(END) + r"\n?", lambda _: block, current, flags=re.S)
    else:
        current = current.rstrip() + "\n\n" + block
    DOC.write_text(current)


def _ms(value: float) -> str:
    """Milliseconds for the table: one decimal, two below 1 ms (CPU per request is often that small)."""
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def _load_label(r: dict) -> str:
    """The load column: target rate and connection count, or concurrency."""
    if r["mode"] == "rate":
        return f"{r['value']:g} req/s paced ({r['connections']} conns)"
    return f"{r['value']:g} concurrent"


def _errors_label(r: dict) -> str:
    """Total errors, with wrk's kinds (connect, read, write, timeout, status >= 400) when there are any."""
    if not r["errors"]:
        return "0"
    return f"{r['errors']} ({', '.join(f'{kind} {count}' for kind, count in r['error_kinds'].items())})"


def report(
    args: argparse.Namespace,
    command: str,
    load_average: tuple[float, float, float],
    local: dict,
    results: list[dict],
    ready: dict[str, float],
) -> str:
    """The Markdown of the Serving section: setup, results table, stage breakdown, goal verdicts."""
    goal_mode = DEFAULT_FSYNC if DEFAULT_FSYNC in ready else next(iter(ready))
    interval_ms = os.environ.get("STREAMREC_LOG_FSYNC_INTERVAL_MS", "50")
    lines = [
        "## Serving",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {load_average[0]:.2f} / {load_average[1]:.2f} / "
        f"{load_average[2]:.2f} over 1 / 5 / 15 min before the run).",
        "",
        f"Synthetic bundle: {args.items:,} items, {args.users:,} users, random-weight TwoTower + Ranker (latency "
        f"does not depend on training; the recommendations are meaningless), index `{local['index_kind']}`, "
        f"retrieval top-{local['retrieval_k']}, k = 10, epsilon-greedy exploration, fairness re-rank on, holdout off "
        f"(every request personalized). Server: "
        + ("one uvicorn process" if args.workers == 1 else f"`--workers {args.workers}` uvicorn processes")
        + f" ({_server_stack()}), requests served on each one's "
        "event loop with 1 torch and 1 FAISS thread (ADR 0005). Impression log (`STREAMREC_LOG_FSYNC`): "
        + "; ".join(f"`{mode}` {FSYNC_MODES[mode].format(interval_ms=interval_ms)}" for mode in ready)
        + ".",
        "",
        "Load driver: wrk (C) with one thread (`-t1`, `--timeout 5s`, `bench/wrk/random_users.lua`, uniformly "
        f"random users) on the same {os.cpu_count()} cores, after {WARMUP_SECONDS} s of unrecorded warm-up per "
        f"server; {args.duration} s per level. Paced levels are a closed loop with exponential think time (wrk has "
        "no true open loop; wrk2 is not packaged in Debian): each connection waits on average connections / rate "
        "before its next request, which approximates Poisson arrivals at the target rate while the latency is far "
        "below the think time; when the server falls behind, the achieved rate drops below the target instead of "
        "a queue building up, so a level that fell short did not measure latency at its target. Latency is from "
        "the request's write to its response. CPU ms/req: the server's utime + stime (/proc, all threads) and "
        "wrk's, over the level, divided by the requests served (in process: this process's CPU per call). Errors: "
        "wrk's connect / read / write / timeout (> 5 s) counts and `status` (HTTP ≥ 400, as wrk counts them).",
        "",
        "Server start to ready (verify hashes + load + build arrays): "
        + ", ".join(f"{seconds:.1f} s (`{mode}`)" for mode, seconds in ready.items())
        + f"; in-process bundle load {local['load_seconds']:.1f} s.",
        "",
        "| log fsync | load | requests | errors | achieved req/s | p50 (ms) | p90 (ms) | p99 (ms) | p99.9 (ms) "
        "| server CPU ms/req | wrk CPU ms/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| (in process: `Recommender.recommend`, no HTTP, no log) | sequential, 1 thread | {local['n']} | 0 | "
        f"{1000 / local['mean_ms']:.0f} | {_ms(local['p50_ms'])} | {_ms(local['p90_ms'])} | {_ms(local['p99_ms'])} | "
        f"{_ms(local['p999_ms'])} | {_ms(local['cpu_ms'])} | |",
    ]
    for r in results:
        achieved = f"{r['achieved']:.0f}" + (f" of {r['value']:g}" if r["mode"] == "rate" else "")
        lines.append(
            f"| `{r['fsync']}` | {_load_label(r)} | {r['requests']} | {_errors_label(r)} | {achieved} | "
            f"{_ms(r['p50_ms'])} | {_ms(r['p90_ms'])} | {_ms(r['p99_ms'])} | {_ms(r['p999_ms'])} | "
            f"{_ms(r['server_cpu_ms'])} | {_ms(r['driver_cpu_ms'])} |"
        )
    stages = local["stages"]
    lines += [
        "",
        f"In process, per stage (mean over {stages['users']} of the same users, 1 thread; the steps of "
        "`Recommender.personalized` called one by one with a clock between them, `bench/serve.py:stage_breakdown`):",
        "",
        "| stage | ms | share |",
        "|---|---:|---:|",
    ]
    for key, label in [
        ("user_tower_ms", "user tower (features -> embedding)"),
        ("faiss_ms", f"FAISS search (`{local['index_kind']}`, top-{local['retrieval_k']})"),
        ("ranker_ms", "ranker (`Ranker.score_rows` on the candidates + sort)"),
        ("rest_ms", "rest (under-exposed groups and their reach, re-rank, exploration, page)"),
        ("total_ms", "sum (the personalized path, timed step by step)"),
    ]:
        lines.append(f"| {label} | {stages[key]:.3f} | {stages[key] / stages['total_ms']:.0%} |")

    default_note = ", the server's default" if goal_mode == DEFAULT_FSYNC else f"; `{DEFAULT_FSYNC}` was not run"
    lines += ["", f"Against the goals (log fsync `{goal_mode}`{default_note}):", ""]
    rate_200 = next((r for r in results if r["fsync"] == goal_mode and r["mode"] == "rate" and r["value"] == 200), None)
    if rate_200 is None:
        lines.append("- p99 < 25 ms at 200 req/s: not measured (no 200 req/s level in this run).")
    else:
        kept_up = rate_200["achieved"] >= 0.95 * 200
        met = rate_200["p99_ms"] < 25 and not rate_200["errors"] and kept_up
        lines.append(
            f"- p99 < 25 ms at 200 req/s: p99 {rate_200['p99_ms']:.1f} ms, {rate_200['achieved']:.0f} req/s achieved, "
            f"{rate_200['errors']} errors: **{'met' if met else 'NOT met'}**"
            + ("" if kept_up else " (the server did not keep up: below 95% of the target rate)")
            + "."
        )
    single = next(
        (r for r in results if r["fsync"] == goal_mode and r["mode"] == "concurrency" and r["value"] == 1), None
    )
    if single is None:
        lines.append("- HTTP + logging ≤ 50% over in process: not measured (no concurrency-1 level in this run).")
    else:
        overhead = (single["p50_ms"] - local["p50_ms"]) / local["p50_ms"]
        verdict = "met" if overhead <= 0.5 else "NOT met"
        lines.append(
            f"- HTTP + logging ≤ 50% over in process (p50, one request at a time): {single['p50_ms']:.2f} ms over "
            f"HTTP vs {local['p50_ms']:.2f} ms in process, {overhead:+.0%}: **{verdict}**."
        )
    return "\n".join(lines)


def main() -> None:
    """Parse the command line; run the serving benchmark and write its doc section (fairness: bench/fairness.py)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path("/tmp/streamrec-bench"))
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    # wrk takes whole seconds only
    parser.add_argument("--duration", type=int, default=20, help="seconds per load level (whole seconds)")
    parser.add_argument("--rates", default="100,200,300", help="paced levels, target req/s")
    parser.add_argument("--concurrencies", default="1,4,16", help="closed-loop levels, connections")
    parser.add_argument(
        "--fsync-modes",
        default=DEFAULT_FSYNC_MODES,
        help=f"STREAMREC_LOG_FSYNC values ({', '.join(FSYNC_MODES)}), one server run each",
    )
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--workers", type=int, default=1, help="server processes (`streamrec serve --workers N`)")
    args = parser.parse_args()
    # Before anything slow: fail fast without the driver, and sample the load before we add our own.
    require_wrk()
    load_average = os.getloadavg()
    command = ".venv/bin/python " + shlex.join(sys.argv)
    fsync_modes = [mode.strip() for mode in args.fsync_modes.split(",") if mode.strip()]
    unknown = sorted(set(fsync_modes) - set(FSYNC_MODES))
    if unknown or not fsync_modes:
        parser.error(f"--fsync-modes: choose from {', '.join(FSYNC_MODES)} (got {args.fsync_modes!r})")
    home = args.home.resolve()
    build_seconds = build(home, args.items, args.users)
    print(f"bundle ready ({build_seconds:.0f} s to build)", flush=True)
    local = in_process(home, args.users, IN_PROCESS_REQUESTS)
    print("in process:", json.dumps(local), flush=True)
    results, ready = over_http(
        home,
        args.users,
        args.duration,
        [float(r) for r in args.rates.split(",") if r],
        [int(c) for c in args.concurrencies.split(",") if c],
        fsync_modes,
        args.workers,
    )
    text = report(args, command, load_average, local, results, ready)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()

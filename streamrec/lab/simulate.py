"""`streamrec simulate`: synthetic users drive the RUNNING API over HTTP and answer from the hidden ground truth.

The closed loop: each simulated request picks a user of `raw.users`, asks the API for a page
(`GET /v1/recommendations`), decides what the user does with every slot using the generator's own
behaviour model (`streamrec.lab.truth.GroundTruth`, read once from the warehouse before any traffic),
and posts those events (`POST /v1/events`). Because the simulator knows the truth it also knows the
counterfactual: for every request it computes the expected engagement of the page actually served
AND of the page the other arm would have served, so the true average treatment effect of
personalisation is known and the SQL estimate in `evaluation.online_causal_effects` can be checked
against it (`streamrec report` prints COVERED / NOT COVERED).

Behaviour model (docs/design.md, "Closed-loop simulation"), for user u and a slot at position p
holding item i, one uniform draw r per slot:

    r < examination(p) * relevance(u, i)   -> play (engaged), maybe complete and like
    r < examination(p)                     -> skip (looked at, not played)
    otherwise                              -> no event (scrolled past)

A play watches the whole item with probability complete_base + complete_slope * relevance (then a
`complete` follows), else 0.95 * Beta(a0 + a1 * relevance, b) of it; it is liked with probability
like_scale * relevance^2: the generator's constants from `truth.params`. Organic engagement: on each
visit the user also makes Poisson(slate_size * organic_share / (1 - organic_share)) searches (the
generator's ratio of organic to feed impressions) for items drawn from `exposure_weights()`, played
with probability relevance (always examined). The API accepts only events on served requests, so
organic plays (request_id NULL) are appended to the same durable event log the API writes
(`logs/events/`, the simulator's own segment), which `streamrec ingest` loads into `ops.events`.

Counterfactuals: the holdout page is the bundle's popularity list; the personalised page for a
holdout user is computed in this process by the API's own `Recommender` on the same bundle
(exploration draws from the simulator's RNG; fairness counters restored from the impression log and
fed with every page the API serves, as the API does). The truth is written AFTER the traffic, with
the writer lock, to `truth.simulation_runs`, `truth.simulation_outcomes` (per user) and
`truth.simulation_requests` (per request). The API never opens the warehouse, so nothing conflicts.

The oracle: for every request the simulator also values the best page it could have served, the
top k servable items (the serving bundle's catalogue) by true relevance, in relevance order (with
examination falling with the slot, that order maximises the expected engaged slots). Next to the
served and holdout pages it gives the share of the oracle's lift over popularity that personalisation
captured, (personalised - holdout) / (oracle - holdout) over the causal users: 0 means no better than
popularity, 1 means as good as the truth allows. Stored per user in `truth.simulation_outcomes`, per
request in `truth.simulation_requests` and per run in `truth.simulation_oracle`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pyarrow as pa

from streamrec.core.errors import StreamRecError
from streamrec.core.progress import progress
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall, transaction
from streamrec.lab.truth import GroundTruth, load_truth

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
MAX_REQUESTS = 1_000_000  # a bound on the loop, not a tuning knob
DEFAULT_CONCURRENCY = 4  # async HTTP clients; the API has 2 cores, more only queues
HTTP_TIMEOUT_SECONDS = 60.0
CAUSAL_ARMS = ("personalized", "holdout")
ORGANIC_NAMESPACE = uuid.UUID("0c6a4f3e-3d5b-4b43-9a55-5d2f6e1c7a21")

TRUTH_SQL = {
    "simulation_runs": """
        create table if not exists truth.simulation_runs (
            run_id VARCHAR primary key, started_at TIMESTAMP, finished_at TIMESTAMP, url VARCHAR, seed BIGINT,
            requests BIGINT, model_versions VARCHAR, treated_users BIGINT, control_users BIGINT,
            cold_start_users BIGINT, true_ate_engagement_rate DOUBLE, true_ate_watch_seconds DOUBLE,
            events_posted BIGINT, organic_events BIGINT, notes VARCHAR)""",
    "simulation_outcomes": """
        create table if not exists truth.simulation_outcomes (
            run_id VARCHAR, user_id BIGINT, arm VARCHAR, model_version VARCHAR, requests BIGINT, slots BIGINT,
            expected_engagement_personalized DOUBLE, expected_engagement_holdout DOUBLE,
            expected_watch_seconds_personalized DOUBLE, expected_watch_seconds_holdout DOUBLE,
            engaged_slots BIGINT, watch_seconds DOUBLE, organic_watch_seconds DOUBLE,
            primary key (run_id, user_id, arm, model_version))""",
    "simulation_requests": """
        create table if not exists truth.simulation_requests (
            run_id VARCHAR, request_id VARCHAR, user_id BIGINT, policy VARCHAR, model_version VARCHAR, slots INTEGER,
            expected_engaged_slots_served DOUBLE, expected_engaged_slots_counterfactual DOUBLE,
            expected_watch_seconds_served DOUBLE, expected_watch_seconds_counterfactual DOUBLE,
            engaged_slots INTEGER, events_posted INTEGER, primary key (run_id, request_id))""",
    "simulation_oracle": """
        create table if not exists truth.simulation_oracle (
            run_id VARCHAR primary key, model_versions VARCHAR, causal_users BIGINT, causal_requests BIGINT,
            page_size DOUBLE, engaged_slots_per_page_oracle DOUBLE, engaged_slots_per_page_personalized DOUBLE,
            engaged_slots_per_page_holdout DOUBLE, engagement_rate_oracle DOUBLE,
            engagement_rate_personalized DOUBLE, engagement_rate_holdout DOUBLE, watch_seconds_oracle DOUBLE,
            watch_seconds_personalized DOUBLE, watch_seconds_holdout DOUBLE, oracle_lift_engagement_rate DOUBLE,
            oracle_share_engagement DOUBLE)""",
}
# Columns added to tables an older simulator created without them (a warehouse keeps its truth tables).
TRUTH_ADDED_COLUMNS = {
    "simulation_outcomes": ("expected_engagement_oracle DOUBLE", "expected_watch_seconds_oracle DOUBLE"),
    "simulation_requests": ("expected_engaged_slots_oracle DOUBLE", "expected_watch_seconds_oracle DOUBLE"),
}


@dataclass(frozen=True)
class SimulationSummary:
    """What one simulation run did and the true effects it knows; `str()` is the CLI's summary."""

    run_id: str
    requests: int
    users: int
    arm_users: dict[str, int]
    events_posted: int
    organic_events: int
    model_versions: tuple[str, ...]
    true_ate_engagement_rate: float | None
    true_ate_watch_seconds: float | None
    seconds: float
    oracle_share_engagement: float | None = None

    def __str__(self) -> str:
        arms = ", ".join(f"{arm} {n}" for arm, n in sorted(self.arm_users.items()))
        ate = "n/a" if self.true_ate_engagement_rate is None else f"{self.true_ate_engagement_rate:+.4f}"
        watch = "n/a" if self.true_ate_watch_seconds is None else f"{self.true_ate_watch_seconds:+.1f} s"
        share = "n/a" if self.oracle_share_engagement is None else f"{self.oracle_share_engagement:.1%}"
        return (
            f"simulation {self.run_id}: {self.requests:,} requests from {self.users:,} users ({arms}) in "
            f"{self.seconds:.1f} s ({self.requests / max(self.seconds, 1e-9):.0f} req/s), "
            f"{self.events_posted:,} events posted, {self.organic_events:,} organic events logged; "
            f"version {', '.join(self.model_versions)}; true ATE engagement rate {ate}, watch seconds {watch} "
            f"(truth.simulation_runs); share of the oracle's lift over popularity captured {share} "
            f"(truth.simulation_oracle). Next: `streamrec ingest`, `streamrec build --select evaluation`, "
            f"`streamrec report`."
        )


@dataclass
class _World:
    """Everything read from the warehouse once, before any traffic."""

    truth: GroundTruth
    user_ids: np.ndarray  # raw.users, sorted
    item_length: dict[int, float]  # item_id -> length_seconds
    organic_items: np.ndarray  # item ids in truth order, for organic draws
    organic_weights: np.ndarray


@dataclass
class _RequestResult:
    """One simulated request: what was served, the truth of both arms, and what the user did."""

    request_id: str
    user_id: int
    policy: str
    model_version: str
    slots: int
    expected_engaged_served: float
    expected_engaged_counterfactual: float | None  # None for cold start (no causal arm)
    expected_watch_served: float
    expected_watch_counterfactual: float | None
    engaged_slots: int
    watch_seconds: float
    expected_engaged_oracle: float = 0.0  # the best page for this user (top-k servable by true relevance)
    expected_watch_oracle: float = 0.0
    events: list[dict] = field(default_factory=list)
    organic: list[tuple[int, str, float, datetime]] = field(default_factory=list)  # item, type, watch, ts


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise StreamRecError(f"--url {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or parsed.host not in LOOPBACK_HOSTS:
        raise StreamRecError(f"--url {url!r}: the simulator only drives an API on loopback (127.0.0.1, localhost)")
    return url.rstrip("/")


def _read_world(settings: Settings) -> _World:
    """The ground truth, users and item lengths, from one short read-only connection (closed before traffic)."""
    with connect(settings, read_only=True) as con:
        truth = load_truth(con)
        users = np.array([r[0] for r in fetchall(con, "select user_id from raw.users order by user_id")], np.int64)
        lengths = dict(fetchall(con, "select item_id, length_seconds from raw.items"))
    users = users[np.isin(users, truth.user_ids)]  # only users the truth can answer for
    if users.size == 0:
        raise StreamRecError("raw.users has no user with a ground truth: run `streamrec generate`")
    weights = truth.exposure_weights()
    return _World(
        truth=truth,
        user_ids=users,
        item_length={int(k): float(v) for k, v in lengths.items()},
        organic_items=truth.item_ids,
        organic_weights=weights / weights.sum(),
    )


class _Counterfactuals:
    """The serving bundle(s) in process, to compute the page the other arm would have served."""

    def __init__(self, settings: Settings, seed: int) -> None:
        import torch

        from streamrec.api.config import ApiSettings
        from streamrec.api.services.fairness import ExposureTracker
        from streamrec.api.services.recommender import Recommender
        from streamrec.api.services.serving_logs import scan_impressions

        self._torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the API needs the cores; one request at a time is enough here
        self.settings = settings
        self.tracker = ExposureTracker()
        self.recommender = Recommender(ApiSettings.from_env(seed=seed).with_home(settings), self.tracker)
        self._bundles: dict[str, object] = {}
        self._scan = scan_impressions(settings.logs_dir, 0)
        self._restored = False
        self._lock = threading.Lock()  # a canary version may be first seen by two worker threads at once

    def close(self) -> None:
        """Give torch its thread count back (the simulator may run inside a longer process, e.g. tests)."""
        import torch

        torch.set_num_threads(self._torch_threads)

    def bundle(self, version: str):
        """The ServingBundle of `version` (ACTIVE.json's is verified against its registered manifest)."""
        with self._lock:
            return self._bundle(version)

    def _bundle(self, version: str):
        if version not in self._bundles:
            from streamrec.api.services.serving_bundle import load_serving_bundle, read_active

            pointer = read_active(self.settings.artifacts_dir)
            if pointer is not None and pointer.version == version:
                bundle = load_serving_bundle(
                    pointer.bundle_dir, expected_version=version, expected_manifest_sha256=pointer.manifest_sha256
                )
            else:
                directory = self.settings.artifacts_dir / version
                if not directory.is_dir():
                    raise StreamRecError(
                        f"the API serves version {version} but {directory} does not exist: run the simulator with "
                        "the STREAMREC_HOME the API serves from"
                    )
                bundle = load_serving_bundle(directory, expected_version=version)
            if not self._restored:  # the API's startup scan, for the exposure controller's deficits
                from streamrec.api.services.recommender import restore_exposure

                restore_exposure(self.tracker, bundle, self._scan)
            self._restored = True
            self._bundles[version] = bundle
        return self._bundles[version]

    def counterfactual_items(self, version: str, user_id: int, policy: str, k: int) -> np.ndarray | None:
        """Item ids the other causal arm would have served; None for cold start (no causal arm)."""
        bundle = self.bundle(version)
        if policy == "personalized":
            page = self.recommender.popular(bundle, k, None, policy="holdout")
        elif policy == "holdout":
            row = bundle.user_row(user_id)
            if row is None:
                return None
            page = self.recommender.personalized(bundle, user_id, row, k)
        else:
            return None
        return bundle.item_ids[page.rows]

    def record_served(self, version: str, item_ids: np.ndarray, policy: str) -> None:
        """Count a served page as exposure, as the API does after logging it (personalised pages only)."""
        bundle = self.bundle(version)
        rows = bundle.item_rows(item_ids)
        known = rows >= 0
        if policy == "personalized" and known.any():
            self.tracker.record(version, bundle.item_groups[rows[known]], np.flatnonzero(known) + 1)


class _Behaviour:
    """The generator's behaviour model: expectations and draws for slates and organic searches."""

    def __init__(self, world: _World) -> None:
        self.world = world
        truth = world.truth
        self.complete_base = truth.param("complete_base")
        self.complete_slope = truth.param("complete_slope")
        self.a0, self.a1, self.b = (
            truth.param("watch_beta_a0"),
            truth.param("watch_beta_a1"),
            truth.param("watch_beta_b"),
        )
        self.like_scale = truth.param("like_scale")
        share = truth.param("organic_share")
        self.organic_rate = truth.param("slate_size") * share / (1.0 - share)

    def lengths(self, item_ids: np.ndarray) -> np.ndarray:
        """Item lengths in seconds (a missing item counts as 0 s watched)."""
        return np.array([self.world.item_length.get(int(i), 0.0) for i in item_ids], dtype=np.float64)

    def expected_watch_share(self, relevance: np.ndarray) -> np.ndarray:
        """E[watched share | play] = P(complete) + (1 - P(complete)) * 0.95 * a / (a + b)."""
        complete = self.complete_base + self.complete_slope * relevance
        a = self.a0 + self.a1 * relevance
        return complete + (1.0 - complete) * 0.95 * a / (a + self.b)

    def expectations(self, user_id: int, item_ids: np.ndarray) -> tuple[float, float]:
        """(expected engaged slots, expected watch seconds) of a page shown in slots 1..len."""
        if item_ids.size == 0:
            return 0.0, 0.0
        users = np.full(item_ids.size, user_id, dtype=np.int64)
        positions = np.arange(1, item_ids.size + 1, dtype=np.float64)
        relevance = self.world.truth.relevance(users, item_ids)
        play = self.world.truth.examination_probability(positions, item_ids.size) * relevance
        watch = play * self.expected_watch_share(relevance) * self.lengths(item_ids)
        return float(play.sum()), float(watch.sum())

    def _watch(self, rng: np.random.Generator, relevance: float, length: float) -> tuple[float, bool, bool]:
        complete = rng.random() < self.complete_base + self.complete_slope * relevance
        share = 1.0 if complete else 0.95 * rng.beta(self.a0 + self.a1 * relevance, self.b)
        liked = rng.random() < self.like_scale * relevance**2
        return round(share * length, 1), complete, liked

    def slate_events(
        self, rng: np.random.Generator, request_id: str, user_id: int, item_ids: np.ndarray, now: datetime
    ) -> tuple[list[dict], int, float]:
        """Draw what the user does with each slot: (events to post, engaged slots, watch seconds)."""
        users = np.full(item_ids.size, user_id, dtype=np.int64)
        positions = np.arange(1, item_ids.size + 1, dtype=np.float64)
        relevance = self.world.truth.relevance(users, item_ids)
        examined = self.world.truth.examination_probability(positions, item_ids.size)
        draws = rng.random(item_ids.size)
        lengths = self.lengths(item_ids)
        events: list[dict] = []
        engaged, watched, clock = 0, 0.0, now
        for item, rel, exam, r, length in zip(item_ids.tolist(), relevance, examined, draws, lengths, strict=True):
            clock += timedelta(seconds=float(rng.exponential(8.0)) + 2.0)  # browsing, as the generator
            if r < exam * rel:
                seconds, complete, liked = self._watch(rng, float(rel), float(length))
                engaged += 1
                watched += seconds
                events.append(_event(request_id, item, "play", seconds, clock))
                done = clock + timedelta(seconds=seconds)
                if complete:
                    events.append(_event(request_id, item, "complete", 0.0, done))
                if liked:
                    events.append(_event(request_id, item, "like", 0.0, done))
                clock = done
            elif r < exam:
                events.append(_event(request_id, item, "skip", 0.0, clock))
        return events, engaged, watched

    def organic_plays(
        self, rng: np.random.Generator, user_id: int, now: datetime
    ) -> list[tuple[int, str, float, datetime]]:
        """Searches outside any recommendation: (item_id, event_type, watch_seconds, event_ts) of the plays."""
        n = int(rng.poisson(self.organic_rate))
        if n == 0:
            return []
        items = rng.choice(self.world.organic_items, size=n, p=self.world.organic_weights)
        relevance = self.world.truth.relevance(np.full(n, user_id, dtype=np.int64), items)
        plays: list[tuple[int, str, float, datetime]] = []
        clock = now
        for item, rel in zip(items.tolist(), relevance, strict=True):
            clock += timedelta(seconds=float(rng.exponential(8.0)) + 2.0)
            if rng.random() < rel:
                seconds, complete, liked = self._watch(rng, float(rel), self.world.item_length.get(item, 0.0))
                plays.append((item, "play", seconds, clock))
                clock += timedelta(seconds=seconds)
                if complete:
                    plays.append((item, "complete", 0.0, clock))
                if liked:
                    plays.append((item, "like", 0.0, clock))
        return plays


class Oracle:
    """The best page the truth allows: the top-k servable items by true relevance, most relevant first.

    Examination falls with the slot, so among pages of k items the relevance-sorted top k maximises the
    expected engaged slots (rearrangement inequality). Servable = in the serving bundle's catalogue (and
    in the truth); pages are cached per (catalogue, user, k) because relevance does not change in a run.
    """

    def __init__(self, truth: GroundTruth) -> None:
        self.truth = truth
        self._catalogues: dict[str, np.ndarray] = {}
        self._pages: dict[tuple[str, int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def set_catalogue(self, key: str, item_ids: np.ndarray) -> None:
        """Register the servable items of one catalogue (a bundle version); unknown to the truth are dropped."""
        items = np.asarray(item_ids, dtype=np.int64)
        with self._lock:
            self._catalogues[key] = np.unique(items[np.isin(items, self.truth.item_ids)])

    def has_catalogue(self, key: str) -> bool:
        """Whether `set_catalogue(key, ...)` ran."""
        return key in self._catalogues

    def page(self, key: str, user_id: int, k: int) -> np.ndarray:
        """Item ids of the oracle page of `user_id` (k slots, or fewer if the catalogue is smaller)."""
        cache_key = (key, int(user_id), int(k))
        with self._lock:
            cached = self._pages.get(cache_key)
            items = self._catalogues[key]
        if cached is not None:
            return cached
        relevance = self.truth.relevance(np.full(items.size, user_id, dtype=np.int64), items)
        k = min(k, items.size)
        top = np.argpartition(-relevance, k - 1)[:k] if k else np.empty(0, dtype=np.int64)
        page = items[top[np.argsort(-relevance[top], kind="stable")]]
        with self._lock:
            self._pages[cache_key] = page
        return page


def _event(request_id: str, item_id: int, event_type: str, watch_seconds: float, ts: datetime) -> dict:
    return {
        "request_id": request_id,
        "item_id": int(item_id),
        "event_type": event_type,
        "watch_seconds": watch_seconds,
        "event_ts": ts.isoformat(),
    }


class _Driver:
    """Runs the requests over a few async HTTP clients; the numpy/torch work goes to worker threads."""

    def __init__(
        self,
        url: str,
        world: _World,
        counterfactuals: _Counterfactuals,
        seed: int,
        k: int,
        concurrency: int,
    ) -> None:
        self.url = url
        self.behaviour = _Behaviour(world)
        self.oracle = Oracle(world.truth)
        self.counterfactuals = counterfactuals
        self.seed = seed
        self.k = k
        self.concurrency = concurrency
        self.results: list[_RequestResult] = []
        self.advance: Callable[[int], None] = lambda _steps: None  # the progress bar's, while run() runs

    async def run(self, users: np.ndarray) -> list[_RequestResult]:
        """Serve one request per entry of `users` (bounded: exactly len(users) requests)."""
        queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        for index, user in enumerate(users.tolist()):
            queue.put_nowait((index, user))
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(min(self.concurrency, len(users)))]
        try:
            with progress("simulating requests", len(users)) as self.advance:
                await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return self.results

    async def _worker(self, queue: asyncio.Queue[tuple[int, int]]) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=HTTP_TIMEOUT_SECONDS) as client:
            while True:
                try:
                    index, user = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                response = await client.get("/v1/recommendations", params={"user_id": user, "k": self.k})
                body = _json_or_fail(response, "GET /v1/recommendations")
                result = await asyncio.to_thread(self._respond, index, user, body)
                for lo in range(0, len(result.events), 1000):  # the API's batch limit
                    posted = await client.post("/v1/events", json={"events": result.events[lo : lo + 1000]})
                    _json_or_fail(posted, "POST /v1/events")
                self.results.append(result)
                self.advance(1)

    def _respond(self, index: int, user: int, body: dict) -> _RequestResult:
        rng = np.random.default_rng([self.seed, index])
        items = np.array([it["item_id"] for it in body["items"]], dtype=np.int64)
        policy, version = body["policy"], body["model_version"]
        self.counterfactuals.record_served(version, items, policy)
        engaged_served, watch_served = self.behaviour.expectations(user, items)
        other = self.counterfactuals.counterfactual_items(version, user, policy, len(items))
        engaged_other, watch_other = (None, None) if other is None else self.behaviour.expectations(user, other)
        if not self.oracle.has_catalogue(version):
            self.oracle.set_catalogue(version, self.counterfactuals.bundle(version).item_ids)
        engaged_oracle, watch_oracle = self.behaviour.expectations(user, self.oracle.page(version, user, len(items)))
        now = datetime.now(UTC).replace(tzinfo=None)
        events, engaged, watched = self.behaviour.slate_events(rng, body["request_id"], user, items, now)
        return _RequestResult(
            request_id=body["request_id"],
            user_id=user,
            policy=policy,
            model_version=version,
            slots=len(items),
            expected_engaged_served=engaged_served,
            expected_engaged_counterfactual=engaged_other,
            expected_watch_served=watch_served,
            expected_watch_counterfactual=watch_other,
            engaged_slots=engaged,
            watch_seconds=watched,
            expected_engaged_oracle=engaged_oracle,
            expected_watch_oracle=watch_oracle,
            events=events,
            organic=self.behaviour.organic_plays(rng, user, now),
        )


def _json_or_fail(response: httpx.Response, what: str) -> dict:
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise StreamRecError(f"{what} answered {response.status_code}: {detail}")
    return response.json()


def _check_ready(url: str) -> str:
    try:
        health = httpx.get(f"{url}/v1/health", timeout=10.0)
    except httpx.HTTPError as exc:
        raise StreamRecError(f"cannot reach the API at {url}: {exc}; start it with `streamrec serve`") from exc
    if health.status_code != 200 or not health.json().get("ready"):
        raise StreamRecError(f"the API at {url} is not ready ({health.status_code}): {health.text[:200]}")
    return str(health.json().get("model_version"))


def user_outcomes(results: list[_RequestResult]) -> list[dict]:
    """Per (user, arm, version): the true expected per-user engagement rate and watch seconds under each arm.

    Matches `online_causal_effects`: a user's engagement rate is engaged slots / slots served under the
    policy, so its expectation is the mean over those slots of P(engaged); watch seconds are summed
    over the user's requests (organic watch is the same under both arms and cancels in the effect).
    The oracle's (the best page the truth allows, same slots) is there for every arm.
    """
    groups: dict[tuple[int, str, str], list[_RequestResult]] = defaultdict(list)
    for result in results:
        groups[(result.user_id, result.policy, result.model_version)].append(result)
    rows = []
    for (user, arm, version), requests in sorted(groups.items()):
        slots = sum(r.slots for r in requests)
        served = sum(r.expected_engaged_served for r in requests)
        served_watch = sum(r.expected_watch_served for r in requests)
        causal = arm in CAUSAL_ARMS and all(r.expected_engaged_counterfactual is not None for r in requests)
        other = sum(r.expected_engaged_counterfactual or 0.0 for r in requests) if causal else None
        other_watch = sum(r.expected_watch_counterfactual or 0.0 for r in requests) if causal else None
        personalised = (served, served_watch) if arm == "personalized" else (other, other_watch)
        holdout = (served, served_watch) if arm == "holdout" else (other, other_watch)
        rows.append(
            {
                "user_id": user,
                "arm": arm,
                "model_version": version,
                "requests": len(requests),
                "slots": slots,
                "expected_engagement_personalized": None if personalised[0] is None else personalised[0] / slots,
                "expected_engagement_holdout": None if holdout[0] is None else holdout[0] / slots,
                "expected_watch_seconds_personalized": personalised[1],
                "expected_watch_seconds_holdout": holdout[1],
                "expected_engagement_oracle": sum(r.expected_engaged_oracle for r in requests) / slots,
                "expected_watch_seconds_oracle": sum(r.expected_watch_oracle for r in requests),
                "engaged_slots": sum(r.engaged_slots for r in requests),
                "watch_seconds": sum(r.watch_seconds for r in requests),
                "organic_watch_seconds": sum(p[2] for r in requests for p in r.organic),
            }
        )
    return rows


def true_effects(outcomes: list[dict]) -> tuple[float | None, float | None]:
    """Population ATE over the simulated users of both causal arms: mean of (personalised - holdout)."""
    causal = [o for o in outcomes if o["arm"] in CAUSAL_ARMS and o["expected_engagement_holdout"] is not None]
    if not causal:
        return None, None
    rate = [o["expected_engagement_personalized"] - o["expected_engagement_holdout"] for o in causal]
    watch = [o["expected_watch_seconds_personalized"] - o["expected_watch_seconds_holdout"] for o in causal]
    return float(np.mean(rate)), float(np.mean(watch))


def oracle_summary(outcomes: list[dict], results: list[_RequestResult]) -> dict:
    """The oracle against the served and holdout pages over the causal users (those with both arms' values).

    Rates and watch seconds are means over users, as in `true_effects`, so the share's numerator is the
    true ATE: share = (personalised - holdout) / (oracle - holdout) of the per-slot engagement rate.
    Engaged slots per page are means over the same users' requests. None where no causal user exists
    or the oracle is no better than popularity (no lift to share).
    """
    causal = [o for o in outcomes if o["arm"] in CAUSAL_ARMS and o["expected_engagement_holdout"] is not None]
    users = {(o["user_id"], o["arm"], o["model_version"]) for o in causal}
    requests = [r for r in results if (r.user_id, r.policy, r.model_version) in users]
    row: dict = {"causal_users": len(causal), "causal_requests": len(requests)}
    if not causal:
        return row

    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    served: dict[str, list[float]] = {"personalized": [], "holdout": []}  # engaged slots per page, per arm
    for r in requests:
        other = r.expected_engaged_counterfactual
        assert other is not None  # causal users have both arms' values (user_outcomes)
        served[r.policy].append(r.expected_engaged_served)
        served["holdout" if r.policy == "personalized" else "personalized"].append(other)
    row |= {
        "page_size": mean([r.slots for r in requests]),
        "engaged_slots_per_page_oracle": mean([r.expected_engaged_oracle for r in requests]),
        "engaged_slots_per_page_personalized": mean(served["personalized"]),
        "engaged_slots_per_page_holdout": mean(served["holdout"]),
    }
    for name in ("oracle", "personalized", "holdout"):
        row[f"engagement_rate_{name}"] = mean([o[f"expected_engagement_{name}"] for o in causal])
        row[f"watch_seconds_{name}"] = mean([o[f"expected_watch_seconds_{name}"] for o in causal])
    lift = row["engagement_rate_oracle"] - row["engagement_rate_holdout"]
    row["oracle_lift_engagement_rate"] = lift
    gained = row["engagement_rate_personalized"] - row["engagement_rate_holdout"]
    row["oracle_share_engagement"] = gained / lift if lift > 1e-12 else None
    return row


def _write_organic(settings: Settings, run_id: str, results: list[_RequestResult]) -> int:
    """Organic plays into the durable event log (own segment); `streamrec ingest` loads them with the API's."""
    from streamrec.core.eventlog import DurableLog, EventRecord

    received = datetime.now(UTC).replace(tzinfo=None)
    records = [
        EventRecord(
            event_id=str(uuid.uuid5(ORGANIC_NAMESPACE, f"{run_id}:{result.request_id}:{n}:{kind}")),
            user_id=result.user_id,
            item_id=item,
            event_type=kind,
            event_ts=ts,
            received_at=received,
            request_id=None,
            watch_seconds=seconds,
        )
        for result in results
        for n, (item, kind, seconds, ts) in enumerate(result.organic)
    ]
    if records:
        with DurableLog(settings.logs_dir, "events") as log:
            log.append(records)
    return len(records)


def _write_truth(
    settings: Settings, run: dict, outcomes: list[dict], results: list[_RequestResult], oracle: dict
) -> None:
    """The run, per-user, per-request and oracle truth in one transaction (after the traffic)."""
    requests = {
        "run_id": [run["run_id"]] * len(results),
        "request_id": [r.request_id for r in results],
        "user_id": [r.user_id for r in results],
        "policy": [r.policy for r in results],
        "model_version": [r.model_version for r in results],
        "slots": [r.slots for r in results],
        "expected_engaged_slots_served": [r.expected_engaged_served for r in results],
        "expected_engaged_slots_counterfactual": [r.expected_engaged_counterfactual for r in results],
        "expected_watch_seconds_served": [r.expected_watch_served for r in results],
        "expected_watch_seconds_counterfactual": [r.expected_watch_counterfactual for r in results],
        "engaged_slots": [r.engaged_slots for r in results],
        "events_posted": [len(r.events) for r in results],
        "expected_engaged_slots_oracle": [r.expected_engaged_oracle for r in results],
        "expected_watch_seconds_oracle": [r.expected_watch_oracle for r in results],
    }
    users = {"run_id": [run["run_id"]] * len(outcomes)} | {name: [o[name] for o in outcomes] for name in outcomes[0]}
    with connect(settings) as con, transaction(con):
        con.execute("create schema if not exists truth")
        for sql in TRUTH_SQL.values():
            con.execute(sql)
        for table, columns in TRUTH_ADDED_COLUMNS.items():
            for column in columns:
                con.execute(f"alter table truth.{table} add column if not exists {column}")
        con.register("run_rows", pa.Table.from_pylist([run]))
        con.execute("insert into truth.simulation_runs by name select * from run_rows")
        con.register("user_rows", pa.table(users))
        con.execute("insert into truth.simulation_outcomes by name select * from user_rows")
        con.register("request_rows", pa.table(requests))
        con.execute("insert into truth.simulation_requests by name select * from request_rows")
        oracle_row = {"run_id": run["run_id"], "model_versions": run["model_versions"]} | oracle
        con.register("oracle_rows", pa.Table.from_pylist([oracle_row]))
        con.execute("insert into truth.simulation_oracle by name select * from oracle_rows")


def simulate(
    settings: Settings,
    url: str = "http://127.0.0.1:8000",
    requests: int = 500,
    seed: int = 11,
    *,
    k: int = 10,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> SimulationSummary:
    """Drive the running API with `requests` simulated visits; write the truth of the run; return a summary."""
    if not 1 <= requests <= MAX_REQUESTS:
        raise StreamRecError(f"--requests must be between 1 and {MAX_REQUESTS:,} (got {requests})")
    if not 1 <= k <= 500:
        raise StreamRecError(f"k must be between 1 and 500 (got {k})")
    url = _check_url(url)
    serving = _check_ready(url)
    world = _read_world(settings)  # the only read of the warehouse; the connection is closed again
    counterfactuals = _Counterfactuals(settings, seed)
    try:
        counterfactuals.bundle(serving)  # load (and verify) before the traffic, not on the first response
        rng = np.random.default_rng(seed)
        users = rng.choice(world.user_ids, size=requests, replace=True)
        started_at = datetime.now(UTC).replace(tzinfo=None)
        began = time.perf_counter()
        driver = _Driver(url, world, counterfactuals, seed, k, max(1, concurrency))
        results = asyncio.run(driver.run(users))
        seconds = time.perf_counter() - began
    finally:
        counterfactuals.close()
    run_id = f"sim-{started_at:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    organic = _write_organic(settings, run_id, results)
    outcomes = user_outcomes(results)
    ate_rate, ate_watch = true_effects(outcomes)
    oracle = oracle_summary(outcomes, results)
    arm_users: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        arm_users[outcome["arm"]] += 1
    versions = tuple(sorted({r.model_version for r in results}))
    events_posted = sum(len(r.events) for r in results)
    run = {
        "run_id": run_id,
        "started_at": started_at,
        "finished_at": datetime.now(UTC).replace(tzinfo=None),
        "url": url,
        "seed": seed,
        "requests": len(results),
        "model_versions": ",".join(versions),
        "treated_users": arm_users.get("personalized", 0),
        "control_users": arm_users.get("holdout", 0),
        "cold_start_users": arm_users.get("cold_start", 0),
        "true_ate_engagement_rate": ate_rate,
        "true_ate_watch_seconds": ate_watch,
        "events_posted": events_posted,
        "organic_events": organic,
        "notes": f"k={k}, concurrency={concurrency}",
    }
    _write_truth(settings, run, outcomes, results, oracle)
    return SimulationSummary(
        run_id=run_id,
        requests=len(results),
        users=len({r.user_id for r in results}),
        arm_users=dict(arm_users),
        events_posted=events_posted,
        organic_events=organic,
        model_versions=versions,
        true_ate_engagement_rate=ate_rate,
        true_ate_watch_seconds=ate_watch,
        seconds=seconds,
        oracle_share_engagement=oracle.get("oracle_share_engagement"),
    )

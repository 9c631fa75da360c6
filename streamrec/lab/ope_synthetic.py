"""Synthetic logged bandit feedback whose target-policy value is known exactly, to test the OPE models.

Each round draws a context x uniformly from `n_contexts` and a slot position uniformly from
`positions`; the logging policy picks item a with probability pi_0(a | x) (a softmax of noisy
preferences mixed with `epsilon` uniform exploration, so every propensity is at least epsilon / n_items)
and the reward is Bernoulli(q(x, a) * exam(position)), exam(p) = 1 / log2(1 + p). The candidate
(target) policy pi_e(a | x) is a sharper softmax of the true q. Because contexts and positions are
uniform and discrete, the candidate's true value is an exact finite sum:

    V(pi_e) = mean_x mean_p sum_a pi_e(a | x) q(x, a) exam(p)

and the logging policy's value V(pi_0) is the same sum with pi_0. Usage:

    logs = make_synthetic_logs(n_rounds=20_000, seed=3)
    write_synthetic_logs(settings, logs)          # raw.ope_logged + raw.ope_target_policy
    # dbt build --select +ope_estimates, then compare evaluation.ope_estimates with logs.true_value
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from streamrec.batch.bandit_import import OPE_LOGGED_SCHEMA, OPE_TARGET_SCHEMA, write_ope_tables
from streamrec.core.settings import Settings


@dataclass(frozen=True)
class SyntheticLogs:
    """Logged rounds, the candidate's full distribution per round, and the exact policy values."""

    dataset: str
    target_policy: str
    logged: pa.Table  # raw.ope_logged rows
    targets: pa.Table  # raw.ope_target_policy rows: every item per round
    true_value: float  # V(pi_e), exact
    logging_value: float  # V(pi_0), exact: what the logged mean reward estimates


def softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax of logits / temperature."""
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=1, keepdims=True)


def examination(positions: np.ndarray) -> np.ndarray:
    """Probability a slot is looked at: 1 / log2(1 + position) for 1-based positions."""
    return 1.0 / np.log2(1.0 + positions)


def make_synthetic_logs(
    n_rounds: int = 20_000,
    n_items: int = 10,
    n_contexts: int = 4,
    positions: tuple[int, ...] = (1, 2, 3),
    epsilon: float = 0.2,
    seed: int = 0,
    dataset: str = "synthetic",
    target_policy: str = "candidate",
) -> SyntheticLogs:
    """Draw `n_rounds` logged rounds from a known bandit and return them with the candidate's exact value."""
    rng = np.random.default_rng(seed)
    reward_probability = rng.uniform(0.05, 0.6, size=(n_contexts, n_items))  # q(x, a)
    # The logger prefers items by a noisy, partly wrong view of q; the candidate follows q closely.
    logging_logits = reward_probability + rng.normal(0.0, 0.25, size=reward_probability.shape)
    logging = (1.0 - epsilon) * softmax(logging_logits, 0.2) + epsilon / n_items  # pi_0(a | x)
    target = softmax(reward_probability, 0.08)  # pi_e(a | x)
    exam = examination(np.asarray(positions, dtype=np.float64))
    mean_exam = float(exam.mean())
    true_value = float((target * reward_probability).sum(axis=1).mean() * mean_exam)
    logging_value = float((logging * reward_probability).sum(axis=1).mean() * mean_exam)

    contexts = rng.integers(0, n_contexts, size=n_rounds)
    slot_index = rng.integers(0, len(positions), size=n_rounds)
    cumulative = logging[contexts].cumsum(axis=1)
    items = (rng.random(n_rounds)[:, None] > cumulative).sum(axis=1).clip(max=n_items - 1)
    success = reward_probability[contexts, items] * exam[slot_index]
    rewards = (rng.random(n_rounds) < success).astype(np.float64)

    request_ids = np.array([f"{dataset}-{i:07d}" for i in range(n_rounds)])
    slot_positions = np.asarray(positions, dtype=np.int32)[slot_index]
    logged = pa.table(
        {
            "dataset": pa.array([dataset] * n_rounds, pa.string()),
            "request_id": pa.array(request_ids, pa.string()),
            "position": pa.array(slot_positions, pa.int32()),
            "item_id": pa.array(items.astype(np.int64), pa.int64()),
            "propensity": pa.array(logging[contexts, items], pa.float64()),
            "reward": pa.array(rewards, pa.float64()),
            "logged_at": pa.nulls(n_rounds, pa.timestamp("us")),
        },
        schema=OPE_LOGGED_SCHEMA,
    )
    targets = pa.table(
        {
            "dataset": pa.array([dataset] * (n_rounds * n_items), pa.string()),
            "target_policy": pa.array([target_policy] * (n_rounds * n_items), pa.string()),
            "request_id": pa.array(np.repeat(request_ids, n_items), pa.string()),
            "position": pa.array(np.repeat(slot_positions, n_items), pa.int32()),
            "item_id": pa.array(np.tile(np.arange(n_items, dtype=np.int64), n_rounds), pa.int64()),
            "target_probability": pa.array(target[contexts].reshape(-1), pa.float64()),
        },
        schema=OPE_TARGET_SCHEMA,
    )
    return SyntheticLogs(
        dataset=dataset,
        target_policy=target_policy,
        logged=logged,
        targets=targets,
        true_value=true_value,
        logging_value=logging_value,
    )


def write_synthetic_logs(settings: Settings, logs: SyntheticLogs) -> None:
    """Store the logs in raw.ope_logged and the candidate in raw.ope_target_policy (replacing the dataset)."""
    write_ope_tables(settings, logged=logs.logged, targets=logs.targets)

"""The report's figures: matplotlib `Figure`s rendered to PNG bytes (no pyplot, no global state, no display).

Every function takes plain Python data (what `streamrec.report` read from the warehouse) and always
returns a PNG: with nothing to plot it draws the reason instead, so the HTML report has the same
figures whether or not there was traffic yet.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

PASS_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"
NEUTRAL_COLOUR = "#1565c0"
MUTED_COLOUR = "#9e9e9e"
TRUTH_COLOUR = "#ef6c00"
DPI = 100


def to_png(figure: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A `data:` URI for an <img> tag, so the HTML needs no other file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _empty(figure: Figure, title: str, reason: str) -> bytes:
    axes = figure.subplots()
    axes.set_title(title)
    axes.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, color=MUTED_COLOUR, fontsize=12)
    axes.set_axis_off()
    return to_png(figure)


def exposure_share_plot(groups: Sequence[dict]) -> bytes:
    """Exposure share vs catalogue share per creator group, one panel per dimension (language, new creator).

    `groups`: rows of online_creator_exposure (group_dimension, group_value, exposure_share,
    catalogue_share, exposure_share_standard_error, group_slot_count, is_judged).
    """
    dimensions = [d for d in ("creator_language", "creator_is_new") if any(g["group_dimension"] == d for g in groups)]
    figure = Figure(figsize=(11, 4), layout="constrained")
    if not dimensions:
        return _empty(figure, "Creator exposure share", "no personalised impressions for the serving version")
    axes_list = figure.subplots(1, len(dimensions), squeeze=False, width_ratios=[3, 1][: len(dimensions)])[0]
    for axes, dimension in zip(axes_list, dimensions, strict=True):
        rows = sorted((g for g in groups if g["group_dimension"] == dimension), key=lambda g: -g["catalogue_share"])
        x = np.arange(len(rows))
        share = np.array([g["exposure_share"] or 0.0 for g in rows])
        error = 1.959964 * np.array([g["exposure_share_standard_error"] or 0.0 for g in rows])
        axes.bar(x - 0.2, [g["catalogue_share"] for g in rows], 0.4, label="catalogue share", color=MUTED_COLOUR)
        axes.bar(x + 0.2, share, 0.4, yerr=error, capsize=3, label="exposure share (95% CI)", color=NEUTRAL_COLOUR)
        axes.set_xticks(x, [str(g["group_value"]) for g in rows], rotation=0)
        axes.set_title(dimension.replace("_", " "))
        axes.set_ylabel("share")
    axes_list[0].legend(loc="upper right", fontsize=8)
    figure.suptitle("Position-weighted creator exposure vs catalogue share (personalised slots)")
    return to_png(figure)


def lorenz_plot(creator_exposure: Sequence[float]) -> bytes:
    """Lorenz curve of position-weighted exposure over creators (zeros included) with its Gini coefficient."""
    figure = Figure(figsize=(5.5, 5), layout="constrained")
    values = np.sort(np.asarray(creator_exposure, dtype=np.float64))
    if values.size == 0 or values.sum() <= 0:
        return _empty(figure, "Lorenz curve of creator exposure", "no personalised impressions for the serving version")
    cumulative = np.concatenate([[0.0], np.cumsum(values) / values.sum()])
    population = np.linspace(0.0, 1.0, values.size + 1)
    gini = 1.0 - float(np.sum((cumulative[1:] + cumulative[:-1]) * np.diff(population)))
    axes = figure.subplots()
    axes.plot(population, cumulative, color=NEUTRAL_COLOUR, label="creators, least exposed first")
    axes.plot([0, 1], [0, 1], "--", color=MUTED_COLOUR, label="equal exposure")
    axes.fill_between(population, cumulative, population, alpha=0.15, color=NEUTRAL_COLOUR)
    axes.set_xlabel("share of creators")
    axes.set_ylabel("share of exposure")
    axes.set_title(f"Lorenz curve of creator exposure (Gini {gini:.3f}, {values.size} creators)")
    axes.legend(loc="upper left", fontsize=8)
    return to_png(figure)


def psi_plot(features: Sequence[tuple[str, float]], threshold: float | None) -> bytes:
    """PSI per feature (horizontal bars, worst on top) with the skew threshold."""
    figure = Figure(figsize=(9, max(3.0, 0.28 * len(features) + 1.2)), layout="constrained")
    if not features:
        return _empty(figure, "Training-serving skew (PSI)", "no PSI: no reference captured or no version serves yet")
    rows = sorted(features, key=lambda f: f[1])
    colours = [FAIL_COLOUR if threshold is not None and psi > threshold else PASS_COLOUR for _, psi in rows]
    axes = figure.subplots()
    axes.barh([name for name, _ in rows], [psi for _, psi in rows], color=colours)
    if threshold is not None:
        axes.axvline(threshold, color=FAIL_COLOUR, linestyle="--", label=f"threshold {threshold:g}")
        axes.legend(loc="lower right", fontsize=8)
    axes.set_xlabel("PSI (latest snapshot vs reference)")
    axes.set_title("Training-serving skew per feature")
    axes.tick_params(axis="y", labelsize=8)
    return to_png(figure)


def tradeoff_plot(points: Sequence[dict], threshold: float | None) -> bytes:
    """Exposure control over reserve caps: equity and never-shown creators (left), relative costs (right)."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    if not points:
        return _empty(
            figure,
            "Exposure control trade-off",
            "not measured on this home: .venv/bin/python bench/fairness.py --trained-home $STREAMREC_HOME",
        )
    caps = [p["cap"] for p in points]
    left, right = figure.subplots(1, 2)
    left.plot(caps, [p["worst_equity"] or 0.0 for p in points], marker="o", color=PASS_COLOUR, label="worst equity")
    left.plot(
        caps,
        [p["creators_never_shown_share"] for p in points],
        marker="s",
        color=NEUTRAL_COLOUR,
        label="creators never shown",
    )
    if threshold is not None:
        left.axhline(threshold, color=FAIL_COLOUR, linestyle="--", label=f"equity threshold {threshold:g}")
    left.axhline(0.1, color=NEUTRAL_COLOUR, linestyle=":", label="never-shown goal 0.1")
    left.set_xlabel("cap (share of page reserved at most)")
    left.set_ylim(0, 1)
    left.legend(fontsize=8)
    left.set_title("Exposure")
    for key, label, marker in (
        ("ndcg_at_10_vs_no_control", "NDCG@10", "o"),
        ("hit_at_10_vs_no_control", "Hit@10", "s"),
        ("true_engaged_per_page_vs_no_control", "true engagement", "^"),
    ):
        right.plot(caps, [100 * (p.get(key) or 0.0) for p in points], marker=marker, label=label)
    right.axhline(-2, color=FAIL_COLOUR, linestyle="--", label="NDCG cost goal -2%")
    right.axhline(0, color="#999999", linewidth=0.8)
    right.set_xlabel("cap (share of page reserved at most)")
    right.set_ylabel("% vs no control")
    right.legend(fontsize=8)
    right.set_title("Cost")
    return to_png(figure)


def latency_plot(latencies_ms: Sequence[float], p99: float | None, threshold: float | None) -> bytes:
    """Histogram of per-request latency (log-spaced bins) with the p99 and its threshold."""
    figure = Figure(figsize=(9, 4), layout="constrained")
    values = np.asarray([v for v in latencies_ms if v is not None and v > 0], dtype=np.float64)
    if values.size == 0:
        return _empty(figure, "Request latency", "no logged requests for the serving version")
    axes = figure.subplots()
    low, high = values.min(), values.max()
    bins: np.ndarray | int = np.geomspace(low, high * 1.0001, 40) if high > low else 20
    axes.hist(values, bins=bins, color=NEUTRAL_COLOUR, alpha=0.8)  # type: ignore[arg-type]  # stubs omit arrays
    if high > low:
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))  # 1, 10, 100 rather than 10^0, 10^1
    if p99 is not None:
        axes.axvline(p99, color=TRUTH_COLOUR, label=f"p99 {p99:.1f} ms")
    if threshold is not None:
        axes.axvline(threshold, color=FAIL_COLOUR, linestyle="--", label=f"threshold {threshold:g} ms")
    axes.legend(fontsize=8)
    axes.set_xlabel("latency per request (ms, logged by the API up to the log write)")
    axes.set_ylabel("requests")
    axes.set_title(f"Request latency ({values.size:,} requests)")
    return to_png(figure)


def effects_plot(effects: Sequence[dict], truths: dict[str, float]) -> bytes:
    """Causal ATEs and naive effects with 95% intervals, engagement and watch time in separate panels.

    `effects`: rows of online_causal_effects (estimate_name, is_causal, effect, ci_low, ci_high,
    treated_count, control_count); `truths`: estimate_name -> the simulator's true value.
    """
    panels = [
        ("engagement", ["ate_engagement_rate", "naive_ctr_improvement"], "difference in rate"),
        ("watch time", ["ate_watch_seconds", "naive_watch_seconds"], "difference in seconds per user"),
    ]
    by_name = {e["estimate_name"]: e for e in effects if e.get("effect") is not None}
    figure = Figure(figsize=(12, 3.8), layout="constrained")
    if not by_name:
        return _empty(
            figure, "Effect of personalisation", "no personalised and holdout traffic for the serving version"
        )
    axes_list = figure.subplots(1, 2)
    for axes, (title, names, unit) in zip(axes_list, panels, strict=True):
        shown = [n for n in names if n in by_name]
        for y, name in enumerate(shown):
            row = by_name[name]
            low = row["ci_low"] if row["ci_low"] is not None and math.isfinite(row["ci_low"]) else row["effect"]
            high = row["ci_high"] if row["ci_high"] is not None and math.isfinite(row["ci_high"]) else row["effect"]
            colour = NEUTRAL_COLOUR if row["is_causal"] else MUTED_COLOUR
            axes.errorbar(
                row["effect"], y, xerr=[[row["effect"] - low], [high - row["effect"]]], fmt="o", capsize=4, color=colour
            )
            if name in truths:
                axes.plot(truths[name], y, "D", color=TRUTH_COLOUR, label="true ATE (simulator)")
        axes.axvline(0.0, color="black", linewidth=0.8)
        axes.set_yticks(
            range(len(shown)), [f"{n}\n({'causal' if by_name[n]['is_causal'] else 'naive'})" for n in shown]
        )
        axes.set_ylim(-0.6, len(shown) - 0.4)
        axes.set_xlabel(unit)
        axes.set_title(title)
        if any(n in truths for n in shown):
            axes.legend(loc="best", fontsize=8)
    figure.suptitle("Personalised vs holdout: estimates with 95% intervals")
    return to_png(figure)


AGE_BAND_ORDER = ("<18", "18-24", "25-34", "35-44", "45-54", "55+", "unknown")  # the contract's codes, in order


def _interval_bars(axes, rows: Sequence[dict], value: str, low: str, high: str, count: str, label: str, colour: str):
    """Bars with 95% intervals; groups too small to judge are hatched; n goes into the tick label."""
    x = np.arange(len(rows))
    values = np.array([r[value] or 0.0 for r in rows], dtype=np.float64)
    lows = np.array([v if r[low] is None else r[low] for r, v in zip(rows, values, strict=True)], dtype=np.float64)
    highs = np.array([v if r[high] is None else r[high] for r, v in zip(rows, values, strict=True)], dtype=np.float64)
    errors = [np.maximum(values - lows, 0.0), np.maximum(highs - values, 0.0)]
    bars = axes.bar(x, values, yerr=errors, capsize=2, color=colour)
    for bar, row in zip(bars, rows, strict=True):
        if not row["is_judged"]:
            bar.set_hatch("//")
            bar.set_facecolor("white")
            bar.set_edgecolor(MUTED_COLOUR)
    axes.set_xticks(x, [f"{r[label]}\nn={r[count]:,}" for r in rows], fontsize=7)


def intersectional_plot(groups: Sequence[dict], threshold: float | None, age_bands: Sequence[dict]) -> bytes:
    """Normalised exposure of creator language x tenure groups, and Hit@10 by user age band, with sample sizes.

    Hatched bars are groups too small to judge (fewer slots or requests than the power calculation needs).
    """
    inter = sorted(
        (g for g in groups if g["group_dimension"] == "creator_language_x_is_new"), key=lambda g: str(g["group_value"])
    )
    figure = Figure(figsize=(12, 8), layout="constrained")
    if not inter and not age_bands:
        return _empty(figure, "Intersectional equity", "no personalised impressions for the serving version")
    top, bottom = figure.subplots(2, 1)
    if inter:
        rows = [{**g, "group_value": str(g["group_value"]).replace(" x ", "\n")} for g in inter]
        _interval_bars(
            top,
            rows,
            "normalised_share",
            "normalised_share_ci_low",
            "normalised_share_ci_high",
            "group_slot_count",
            "group_value",
            NEUTRAL_COLOUR,
        )
        top.axhline(1.0, color="black", linewidth=0.8, label="exposed in proportion to catalogue")
        if threshold is not None:
            top.axhline(threshold, color=FAIL_COLOUR, linestyle="--", label=f"equity threshold {threshold:g} (ratio)")
        top.set_ylabel("exposure share / catalogue share")
        top.set_title("Creators: language x new creator (hatched: too few slots to judge; n = slots of the version)")
        top.legend(fontsize=8, loc="upper right")
    else:
        top.text(0.5, 0.5, "no creator exposure", ha="center", va="center", color=MUTED_COLOUR)
        top.set_axis_off()
    if age_bands:
        order = {code: i for i, code in enumerate(AGE_BAND_ORDER)}
        rows = sorted(
            age_bands, key=lambda r: (order.get(str(r["user_age_band"]), len(order)), str(r["user_age_band"]))
        )
        _interval_bars(
            bottom,
            rows,
            "hit_at_10_rate",
            "hit_at_10_rate_ci_low",
            "hit_at_10_rate_ci_high",
            "request_count",
            "user_age_band",
            PASS_COLOUR,
        )
        bottom.set_ylabel("online Hit@10 (Wilson 95% CI)")
        bottom.set_title("Users: Hit@10 of personalised requests by age band (hatched: too few requests; n = requests)")
    else:
        bottom.text(0.5, 0.5, "no personalised requests", ha="center", va="center", color=MUTED_COLOUR)
        bottom.set_axis_off()
    return to_png(figure)

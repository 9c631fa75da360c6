"""The cost of amortized exposure control: a trade-off curve over reserve caps, on a trained home.

For each cap (share of a page's slots the controller may reserve, 0 = no control) the active bundle
serves the same sequence of simulated requests in process, exactly as the API would: users drawn
uniformly from `raw.users` (as `streamrec simulate` draws them), the API's `Recommender` with its
default exploration, a fresh exposure tracker fed with every served personalised page. Per cap:

- worst-group equity: min over the three audited dimensions of min/max normalised position-weighted
  exposure share over judged groups (the judged rule and formula of `evaluation.online_creator_exposure`,
  threshold 0.6), on the bundle's own item snapshot;
- the share of catalogue creators never shown;
- NDCG@10 and Hit@10 of the greedy page (after the control, before exploration) for every request of a
  user held out by the trainer (`ops.offline_holdout`), relative to cap 0 on the same requests;
- the simulator's true engagement: expected engaged slots per page under the generator's behaviour model
  (examination(position) x relevance), relative to cap 0.

    .venv/bin/python bench/fairness.py --trained-home .streamrec [--caps 0,0.1,0.2,0.3,0.4,0.5]
        [--requests 2400] [--targets 0.6] [--write-doc] [--json PATH]

`--json` (default `$HOME/reports/fairness_tradeoff.json`) is what `streamrec report` plots; `--write-doc`
rewrites the "Exposure control trade-off" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from streamrec.lab.exposure_tradeoff import run_curve, write_curve

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Exposure control trade-off"
MARKS = ("<!-- fairness:start -->", "<!-- fairness:end -->")  # what --write-doc rewrites


def markdown(points: list[dict], command: str, version: str) -> str:
    """The docs/benchmarks.md section: the command, the setup and one row per cap."""
    lines = [
        SECTION,
        "",
        f"`{command}` on the bundle `make demo` trains ({version}); {points[0]['requests']} personalised requests "
        "per cap, users drawn uniformly as `streamrec simulate` does, the API's Recommender in process with its "
        "default epsilon-greedy exploration; equity on the bundle's item snapshot with the SQL metric's judged-group "
        "rule. NDCG@10 / Hit@10: the greedy page (after the control, before exploration) of requests of held-out "
        "users; true engagement: expected engaged slots per page under the generator's behaviour model. "
        "Brackets: paired 95% bootstrap intervals over requests (every cap serves the same requests); ms per "
        "request: what the API does per request in process (candidates, control, exploration, exposure record; not "
        "this bench's greedy measure), one torch thread.",
        "",
        "| cap (share of page) | slots reserved | worst-group equity (goal ≥ 0.6) | creators never shown (goal ≤ 10%) "
        "| NDCG@10 vs no control (goal ≥ −2%) | Hit@10 vs no control | true engagement vs no control "
        "| ms per request |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        equity = "n/a" if p["worst_equity"] is None else f"{p['worst_equity']:.3f} ({p['worst_dimension']})"
        lines.append(
            f"| {p['cap']:.2f} | {p['reserved_share']:.1%} | {equity} | {p['creators_never_shown_share']:.1%} | "
            f"{_rel(p, 'ndcg_at_10')} | {_rel(p, 'hit_at_10')} | {_rel(p, 'true_engaged_per_page')} | "
            f"{p['ms_per_request']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def _rel(point: dict, name: str) -> str:
    """`+1.2% [-0.8%, +3.1%]`: a figure relative to no control with its paired 95% interval (none at cap 0)."""
    interval = point.get(f"{name}_vs_no_control_ci")
    text = _pct(point[f"{name}_vs_no_control"])
    return text if not interval or point["cap"] == 0 else f"{text} [{_pct(interval[0])}, {_pct(interval[1])}]"


def write_section(text: str) -> None:
    """Replace the generated part of the trade-off section of docs/benchmarks.md (between MARKS), or add it.

    Only the marked part is rewritten: the reading of the figures written below it, and the next section's
    own markers (e.g. bench/feature_build.py's), are kept.
    """
    doc = DOC.read_text()
    marked = f"{MARKS[0]}\n{text}{MARKS[1]}\n"
    if MARKS[0] in doc and MARKS[1] in doc:
        head, _, rest = doc.partition(MARKS[0])
        after = rest.partition(MARKS[1])[2]
        doc = head + marked + after.removeprefix("\n")  # marked already ends with the end mark's newline
    elif SECTION in doc:  # an unmarked section (older docs): it ends at the next heading or marker
        head, _, rest = doc.partition(SECTION)
        ends = [i + 1 for i in (rest.find("\n## "), rest.find("\n<!--")) if i >= 0]
        tail = rest[min(ends) :] if ends else ""
        doc = head + marked + ("\n" + tail if tail else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + marked
    DOC.write_text(doc)


def main() -> None:
    """Parse the command line, run every cap, print and store the curve."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained-home", type=Path, required=True, help="STREAMREC_HOME with a promoted bundle")
    parser.add_argument("--caps", default="0,0.1,0.2,0.3,0.5,0.7,1.0")
    parser.add_argument("--requests", type=int, default=2400, help="personalised requests per cap (demo: ~2400)")
    parser.add_argument("--targets", default="", help="STREAMREC_FAIRNESS_TARGETS for every cap (default 0.6)")
    parser.add_argument("--price", type=float, default=None, help="STREAMREC_FAIRNESS_PRICE (default: the API's)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, default=None, help="where to store the curve for `streamrec report`")
    parser.add_argument("--write-doc", action="store_true", help="rewrite the section of docs/benchmarks.md")
    args = parser.parse_args()
    home = args.trained_home.resolve()
    caps = [float(c) for c in args.caps.split(",") if c.strip()]
    points = run_curve(home, caps, args.requests, args.targets, args.seed, args.price)
    for point in points:
        print(json.dumps(point), flush=True)
    command = ".venv/bin/python " + shlex.join(["bench/fairness.py", *sys.argv[1:]])
    out = write_curve(home, points, command, args.targets, args.json)
    text = markdown(points, command, json.loads(out.read_text())["version"])
    print(text)
    print(f"curve stored in {out}")
    if args.write_doc:
        write_section(text)


if __name__ == "__main__":
    main()

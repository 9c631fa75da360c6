"""CPU per request of the in-process path (recommend + record_served) of one checkout, at 1M items x 1M users.

Run:  .venv/bin/python bench/request_cpu.py CHECKOUT [--home /tmp/streamrec-bench]

CHECKOUT is a repository directory, e.g. `git worktree add /tmp/before <commit>`, so two versions compare
in one session: alternate them and report the ratio. The bundle is bench/serve.py's synthetic one (build it
there first). One torch and one FAISS thread, as the server.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path


def main() -> None:
    """Import StreamRec from CHECKOUT, warm up, time 1500 random users."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--home", type=Path, default=Path("/tmp/streamrec-bench"))
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout.resolve()))
    import faiss
    import numpy as np
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    streamrec = importlib.import_module("streamrec")
    if not str(streamrec.__file__).startswith(str(args.checkout.resolve())):
        raise SystemExit(f"imported {streamrec.__file__}, not the checkout {args.checkout}")
    config = importlib.import_module("streamrec.api.config")
    fairness = importlib.import_module("streamrec.api.services.fairness")
    recommender_module = importlib.import_module("streamrec.api.services.recommender")
    serving_bundle = importlib.import_module("streamrec.api.services.serving_bundle")
    home = args.home.resolve()
    bundle = serving_bundle.load_serving_bundle(serving_bundle.read_active(home / "artifacts").bundle_dir)
    settings = config.ApiSettings.from_env({"STREAMREC_HOME": str(home), "STREAMREC_HOLDOUT_SHARE": "0"})
    recommender = recommender_module.Recommender(settings, fairness.ExposureTracker())
    rng = np.random.default_rng(0)
    for user in rng.integers(1, 1_000_000, 50):
        recommender.record_served(bundle, recommender.recommend(bundle, int(user), 10))
    users = [int(u) for u in rng.integers(1, 1_000_000, 1500)]
    started = time.process_time()
    for user in users:
        recommender.record_served(bundle, recommender.recommend(bundle, user, 10))
    per_request = (time.process_time() - started) * 1000 / len(users)
    print(f"{args.checkout}: {per_request:.3f} ms CPU per request (recommend + record_served)")


if __name__ == "__main__":
    main()

"""Per-request cost of the ranker reading features by name vs a positional tensor (ADR 0003).

Run: `.venv/bin/python bench/named_access.py` -- one torch thread, a batch of 500 candidates with
all 29 contract features + the two-tower score; the positional baseline gets the same numbers
already stacked in the trained order and skips only the by-name selection and stacking.
"""

import timeit

import torch

from streamrec.contracts import load_contract
from streamrec.models_ml.ranker import TWO_TOWER_SCORE, make_ranker

torch.set_num_threads(1)
c = load_contract()
feats = [*c.for_entity("user"), *c.for_entity("item"), TWO_TOWER_SCORE]
r = make_ranker(feats).eval()
g = torch.Generator().manual_seed(0)
batch = {
    f.name: (torch.randint(0, len(f.codes), (500,), generator=g) if f.codes else torch.rand(500, generator=g))
    for f in feats
}
batch |= {"user_id": torch.zeros(500, dtype=torch.long), "item_id": torch.arange(500)}
enc = r.encoder
# Positional baseline: the same numbers already stacked in the trained order, codes in a (B, n_codes) tensor.
numbers = torch.stack([batch[n] for n in enc.numeric_names], 1)
codes = torch.stack([batch[n] for n in enc.code_names], 1)
log_mask = torch.tensor(enc.log_mask)


def positional():
    x = torch.where(log_mask, torch.log1p(numbers.clamp(min=0)), numbers)
    missing = torch.isnan(x)
    x = torch.where(missing, 0.0, (x - enc.mean) / enc.std)
    parts = [x, missing[:, enc.nullable_index].float()] + [
        enc.code_embeddings[n](codes[:, i]) for i, n in enumerate(enc.code_names)
    ]
    return r.mlp(torch.cat(parts, 1)).squeeze(-1)


with torch.inference_mode():
    assert torch.allclose(positional(), r(batch))
    for name, fn in (("named", lambda: r(batch)), ("positional", positional)):
        t = timeit.repeat(fn, number=200, repeat=7)
        print(name, f"{min(t) / 200 * 1e6:.0f} us per 500-candidate batch (best of 7 x 200)")

"""The creator groups that fairness is audited over, derived from the contract (never a literal count).

A group is a creator language (the codes of `item_creator_language_code`) crossed with new vs established
creator: the API's exposure re-rank and the canary's equity check both count groups this way.
"""

from __future__ import annotations

from streamrec.contracts.schema import load_contract

CREATOR_LANGUAGES: tuple[str, ...] = tuple(load_contract()["item_creator_language_code"].codes)
N_CREATOR_GROUPS = len(CREATOR_LANGUAGES) * 2  # language x {established, new}

"""Stable user-to-arm assignment by hashing the user id with a salt (holdout and canary routing)."""

from __future__ import annotations

import hashlib


def unit_hash(salt: str, user_id: int) -> float:
    """A number in [0, 1) fixed by (salt, user_id): uniform over users, independent across salts."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def in_holdout(user_id: int, share: float, salt: str) -> bool:
    """Whether the user belongs to the randomised holdout that gets the non-personalised policy."""
    return unit_hash(salt, user_id) < share


def routes_to_candidate(user_id: int, share: float, salt: str) -> bool:
    """Whether the canary sends this user to the candidate bundle; raising the share only adds users."""
    return unit_hash(salt, user_id) < share

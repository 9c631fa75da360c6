"""The event vocabulary: which event types exist and which of them count as engagement.

One source for Python; the dbt macros `interaction_event_types()`, `positive_event_types()` and
`click_event_types()` (dbt_project/macros/evaluation/evaluation_helpers.sql) and the API's `EventType`
say the same, which tests/unit/test_shared_facts.py checks.
"""

from __future__ import annotations

# Interactions in raw.interactions (a skip is a negative; watch seconds sit on the play).
INTERACTION_EVENT_TYPES = ("play", "complete", "like", "skip")
# Positive engagement with a served or organic item: the training label's positives and the engagement outcome.
POSITIVE_EVENT_TYPES = ("play", "complete", "like")
# A click-through: a click or any positive engagement (the canary's engagement metric); a skip is not.
ENGAGED_EVENT_TYPES = ("click", *POSITIVE_EVENT_TYPES)
# What `POST /v1/events` accepts: every interaction type plus the click.
API_EVENT_TYPES = ("click", *INTERACTION_EVENT_TYPES)


def sql_list(values: tuple[str, ...]) -> str:
    """`('a', 'b')`: a tuple of event types as a SQL list literal."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"

"""Plain services the controllers call: serving state, the recommender pipeline and its policies, logs, metrics."""

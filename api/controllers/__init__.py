"""One controller per resource; they stay thin and call api.services."""

"""The serving process's services in one object on `app.state`, created in the lifespan and closed in `finally`."""

from __future__ import annotations

from dataclasses import dataclass, field

from litestar.exceptions import ServiceUnavailableException

from streamrec.api.config import ApiSettings
from streamrec.api.services.fairness import ExposureTracker
from streamrec.api.services.metrics import Metrics
from streamrec.api.services.recommender import Recommender
from streamrec.api.services.serving import Routing, ServingState
from streamrec.api.services.serving_logs import ServingLogs
from streamrec.api.services.shared_state import SharedState


@dataclass
class Services:
    """Everything the controllers use; `logs` exists between lifespan start and end."""

    config: ApiSettings
    state: ServingState
    tracker: ExposureTracker
    recommender: Recommender
    metrics: Metrics = field(default_factory=Metrics)
    logs: ServingLogs | None = None
    shared: SharedState | None = None  # several workers: shared exposure and command announcements

    def announce(self) -> None:
        """Tell the other workers a command changed what serves (no-op for a single process)."""
        if self.shared is not None:
            self.shared.bump()

    def ready_routing(self) -> tuple[Routing, ServingLogs]:
        """The current routing and logs, or 503 naming why the service is not ready."""
        routing = self.state.routing
        if routing.control is None or self.logs is None:
            detail = self.state.load_error or "no bundle loaded yet"
            raise ServiceUnavailableException(detail=f"not ready: {detail}")
        return routing, self.logs

"""Structured JSON logs (one JSON object a line, in the replica logs) and Ray Serve metrics of the forecast path."""

import json
import logging
import time

from ray.serve import metrics

# A child of Ray Serve's logger (Ray Serve's documented way to log from a deployment): the
# events go through the handlers Serve installs in each replica, into the replica's log file
# (/tmp/ray/session_*/logs/serve/replica_<app>_<deployment>_<id>.log) and, with
# RAY_SERVE_LOG_TO_STDERR (default), its stderr. The "pvcast" logger of before had no handler.
log = logging.getLogger("ray.serve").getChild("pvcast")

FORECASTS = metrics.Counter("pvcast_forecasts_produced", description="Location forecasts stored",
                            tag_keys=("forecast_type",))
LOCATION_ERRORS = metrics.Counter("pvcast_location_errors", description="Locations that failed to forecast")
CLIPPED = metrics.Counter("pvcast_clipped_values",
                          description="Quantile values at the plant power limit (capacity or export limit)")
LOCATIONS_PER_REQUEST = metrics.Histogram("pvcast_locations_per_request", description="Locations per request",
                                          boundaries=[1, 10, 100, 1000, 10000])
LATENCY = metrics.Histogram("pvcast_task_seconds", description="Forecast task wall time, s",
                            boundaries=[0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300])


def event(name, **fields):
    """Log one JSON line ``{"event": name, **fields}`` (task_id, run ids, counts, timings)."""
    log.info(json.dumps({"event": name, "ts": time.time(), **fields}, default=str))


def reason(exc):
    """Message of an exception; for a Ray task/actor error, that of its original cause."""
    cause = getattr(exc, "cause", None)
    return str(cause if isinstance(cause, BaseException) else exc).strip()

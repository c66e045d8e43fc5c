"""The hub's Prometheus metrics that are counted as things happen, as ``prometheus_client`` types.

- ``check_seconds()``: the ``hub_check_seconds`` histogram of the stateless checks per package;
  one per hub (``hub.service.Hub.check_seconds``), shared by its workers.
- ``ApiMetrics``: the counters of one API process, ``hub_http_requests{method, route, status}``
  (``hub.api.app.http_counter``) and ``hub_vdxp_requests{operation, outcome}``
  (``hub.vdxp.server.count_requests``).

None of them is registered in prometheus_client's global registry: several hubs may run in one
process (the tests do), and each ``/metrics`` answer (``hub.api.health``) registers its own hub's
and API's metrics in a registry made for that answer, beside the values read at scrape time
(packages by outcome, queue depths, certificates...).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CHECK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)  # seconds; +Inf is added


def check_seconds() -> Histogram:
    return Histogram("hub_check_seconds", "Time of the stateless checks per package", buckets=CHECK_BUCKETS,
                     registry=None)


class ApiMetrics:
    """What one API process counts per request."""

    def __init__(self) -> None:
        self.http_requests = Counter("hub_http_requests", "HTTP requests answered, by method, route and status",
                                     ["method", "route", "status"], registry=None)
        self.vdxp_requests = Counter("hub_vdxp_requests",
                                     "VDXP requests by operation and outcome (OK or the ErrorCode)",
                                     ["operation", "outcome"], registry=None)

    def collectors(self) -> tuple:
        return self.http_requests, self.vdxp_requests

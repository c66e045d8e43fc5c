"""Prometheus metrics are prometheus_client types only (issue 10): the check-time histogram is a
``prometheus_client.Histogram`` shared by a hub's workers, the request counters are ``Counter``s,
and no module of the hub writes the exposition format (``# TYPE``, ``_bucket``) by hand."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from hub.metrics import CHECK_BUCKETS, ApiMetrics, check_seconds
from hub.pipeline.worker import Stats

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_formats_metrics_text_by_hand():
    hand_made = re.compile(r"# (TYPE|HELP) |_bucket\b|\ble=\S*\}|['\"]\+Inf|\bcheck_hist\b")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "hub").rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if hand_made.search(line)]
    assert found == []


def test_the_check_histogram_is_a_prometheus_histogram():
    stats = Stats()
    assert isinstance(stats.check_seconds, Histogram)
    shared = check_seconds()
    a, b = Stats(check_seconds=shared), Stats(check_seconds=shared)  # as hub.service gives its workers
    for s, seconds in ((a, 0.0004), (b, 0.003), (b, 7.0)):
        s.observe_check(seconds)
    registry = CollectorRegistry()
    registry.register(shared)
    text = generate_latest(registry).decode()
    assert 'hub_check_seconds_bucket{le="0.0005"} 1.0' in text
    assert 'hub_check_seconds_bucket{le="0.005"} 2.0' in text and 'hub_check_seconds_bucket{le="+Inf"} 3.0' in text
    assert "hub_check_seconds_count 3.0" in text
    assert len(re.findall(r"^hub_check_seconds_bucket", text, re.M)) == len(CHECK_BUCKETS) + 1
    assert "hub_check_seconds_count 0.0" in _text(stats.check_seconds)  # its own, untouched


def test_request_counters_are_prometheus_counters():
    m = ApiMetrics()
    assert all(isinstance(c, Counter) for c in m.collectors())
    m.http_requests.labels("GET", "/healthz", "200").inc()
    m.vdxp_requests.labels("getEdoc", "OK").inc(2)
    text = "".join(_text(c) for c in m.collectors())
    assert 'hub_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'hub_vdxp_requests_total{operation="getEdoc",outcome="OK"} 2.0' in text


def _text(collector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()

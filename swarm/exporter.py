"""`swarm exporter`: the swarm's own metrics for Prometheus (`swarm_*`), read from git and Redis at each scrape.

Counters come from the swarm's counters in Redis, so they survive an exporter restart; the duration histograms
come from the events stream, read incrementally (a restart re-reads what the stream still holds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from swarm import state
from swarm.runtime import Runtime
from swarm.timeline import TIERS, Timeline

log = logging.getLogger(__name__)

DEFAULT_PORT = 9808
FETCH_EVERY = 15.0
"""Seconds between fetches of origin: a scrape every few seconds must not fetch each time."""
AGENT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
ORACLE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
VENDOR_STATES = ("active", "cooling", "auth_error", "over_cap")
TOKEN_KINDS = ("input_tokens", "output_tokens", "cached_tokens")


class SwarmCollector(Collector):
    """Collects every `swarm_*` family from one Runtime; a scrape that cannot reach Redis reports swarm_up 0."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.lock = threading.Lock()
        self.fetched = 0.0
        self.after = "0-0"
        self.timeline = Timeline()
        self.agent = Histogram("swarm_agent_seconds", "Agent run durations", ["vendor"], registry=None,
                               buckets=AGENT_BUCKETS)  # fmt: skip
        self.oracle = Histogram("swarm_oracle_seconds", "Oracle run durations", ["tier"], registry=None,
                                buckets=ORACLE_BUCKETS)  # fmt: skip
        self.waiting = Histogram("swarm_wait_seconds", "Time an attempt waited: queued or for the merge lock",
                                 ["stage"], registry=None, buckets=ORACLE_BUCKETS)  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        with self.lock:  # Prometheus and a person may scrape at once; the stream cursor is shared
            try:
                families = list(self._families())
            except Exception as exc:  # noqa: BLE001 - an exporter reports being down, it does not crash
                log.warning("scrape failed: %s", exc)
                families = []
            up = GaugeMetricFamily("swarm_up", "1 when the exporter could read git and Redis")
            up.add_metric([], 1 if families else 0)
            yield up
            yield from families

    def _families(self) -> Iterator[Metric]:
        fetch = time.monotonic() - self.fetched > FETCH_EVERY
        snap = state.take(self.rt, fetch=fetch)
        if fetch:
            self.fetched = time.monotonic()
        yield from self._counters()
        yield from _tasks(snap)
        yield from self._slots(snap)
        yield from _main(snap)
        yield from self._vendors()
        self._observe()
        for hist in (self.agent, self.oracle, self.waiting):
            yield from hist.collect()

    def _counters(self) -> Iterator[Metric]:
        counters = self.rt.events.counters()
        landings = CounterMetricFamily("swarm_landings", "Tasks landed on main")
        landings.add_metric([], counters.get("landed", 0))
        yield landings
        attempts = CounterMetricFamily("swarm_attempts", "Finished attempts by outcome and reason",
                                       labels=["outcome", "reason"])  # fmt: skip
        attempts.add_metric(["landed", ""], counters.get("landed", 0))
        for name, value in sorted(counters.items()):
            if name.startswith("rejected:"):
                reason = name.removeprefix("rejected:")
                attempts.add_metric(["lost" if reason == "lost" else "rejected", reason], value)
        yield attempts
        events = CounterMetricFamily("swarm_events", "Task state changes by state", labels=["state"])
        for name, value in sorted(counters.items()):
            if name.startswith("state:"):
                events.add_metric([name.removeprefix("state:")], value)
        yield events

    def _slots(self, snap: state.Snapshot) -> Iterator[Metric]:
        vendors = self.rt.settings.vendors
        queued = GaugeMetricFamily("swarm_queue_depth", "Tasks queued per vendor", labels=["vendor"])
        slots = GaugeMetricFamily("swarm_slots", "Live worker slots per vendor, capped", labels=["vendor"])
        alive = self.rt.slots.capacity(self.rt.settings)
        busy = GaugeMetricFamily("swarm_slots_busy", "Attempts holding a worker slot per vendor (leases held, "
                                 "but not by riders with their slot given back)", labels=["vendor"])  # fmt: skip
        riding = self.rt.train.freed()
        queued_on = list(snap.queued.values())
        leased_on = [str(lease.get("vendor", "")) for task, lease in snap.leases.items() if task not in riding]
        for name in sorted(vendors):
            queued.add_metric([name], queued_on.count(name))
            slots.add_metric([name], alive.get(name, 0))
            busy.add_metric([name], leased_on.count(name))
        leases = GaugeMetricFamily("swarm_leases", "Task leases held now")
        leases.add_metric([], len(snap.leases))
        train = GaugeMetricFamily("swarm_train_depth", "Candidates in the merge train now")
        train.add_metric([], self.rt.train.depth())
        riders = GaugeMetricFamily("swarm_train_riders", "Candidates riding the train, their worker slot given back")
        riders.add_metric([], len(riding))
        yield from (queued, slots, busy, leases, train, riders)

    def _vendors(self) -> Iterator[Metric]:
        caps = {name: v.daily_cap_usd for name, v in self.rt.settings.vendors.items()}
        states = self.rt.ledger.vendor_states(self.rt.settings.vendors, caps)
        vendor_state = GaugeMetricFamily("swarm_vendor_state", "1 for each vendor's current state",
                                         labels=["vendor", "state"])  # fmt: skip
        tokens = CounterMetricFamily("swarm_tokens", "Tokens used per vendor", labels=["vendor", "kind"])
        spend = CounterMetricFamily("swarm_spend_usd", "USD spent per vendor", labels=["vendor"])
        today = GaugeMetricFamily("swarm_spend_today_usd", "USD spent per vendor today (UTC)", labels=["vendor"])
        for name, info in sorted(states.items()):
            for candidate in VENDOR_STATES:
                vendor_state.add_metric([name, candidate], 1 if info["state"] == candidate else 0)
            total = self.rt.ledger.spend_total(name)
            for kind in TOKEN_KINDS:
                tokens.add_metric([name, kind.removesuffix("_tokens")], total.get(kind, 0))
            spend.add_metric([name], total.get("cost_usd", 0.0))
            today.add_metric([name], float(info.get("spent_today") or 0.0))
        yield from (vendor_state, tokens, spend, today)

    def _observe(self) -> None:
        """Feed the events added since the last scrape to the duration histograms."""
        while batch := self.rt.events.since(self.after, 5000):
            self.after = batch[-1][0]
            for _, entry in batch:
                for span in self.timeline.feed(entry):
                    if span.kind == "agent":
                        self.agent.labels(span.vendor).observe(span.seconds)
                    elif span.kind == "oracle":
                        self.oracle.labels(TIERS.get(span.stage, span.stage)).observe(span.seconds)
                    elif span.stage in ("queued", "waiting_merge_lock"):
                        self.waiting.labels(span.stage).observe(span.seconds)


def _tasks(snap: state.Snapshot) -> Iterator[Metric]:
    by_state = GaugeMetricFamily("swarm_tasks", "Tasks of the backlog by state", labels=["state"])
    rows = snap.rows()
    for name in state.STATES:
        by_state.add_metric([name], sum(1 for row in rows if row["state"] == name))
    yield by_state


def _main(snap: state.Snapshot) -> Iterator[Metric]:
    """main's oracle counts, when a green full run of main's commit is known."""
    counts = snap.oracle
    passing = GaugeMetricFamily("swarm_main_passing", "Cases main passes (full oracle)")
    failing = GaugeMetricFamily("swarm_main_failing", "Cases main fails (full oracle)")
    areas = GaugeMetricFamily("swarm_main_area_passing", "Cases main passes per area", labels=["area"])
    if counts is not None:
        passing.add_metric([], counts.passed)
        failing.add_metric([], counts.failed)
        for area, values in sorted(counts.areas.items()):
            areas.add_metric([area], values.passed)
    yield from (passing, failing, areas)


def registry(rt: Runtime) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SwarmCollector(rt))
    return reg


def serve(rt: Runtime, address: str, port: int) -> None:
    """Serve /metrics until interrupted."""
    server, thread = start_http_server(port, addr=address, registry=registry(rt))
    log.info("swarm exporter on http://%s:%d/metrics", address, port)
    try:
        while thread.is_alive():
            thread.join(1.0)
    finally:
        server.shutdown()

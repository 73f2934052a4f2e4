"""Counting on the request path in plain ints; `drain()` moves the counts into the shared
prometheus_client series (mmap'd values in multiprocess mode, about 1 us per update each),
from the worker's metrics sync: every second, before a scrape it serves, and at stop.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Iterable

from prometheus_client import Counter, Histogram


class _Pending:
    """One (method, route, status class): counts since the last drain, and where they go."""

    __slots__ = ("buckets", "count", "latency", "requests", "seconds")

    def __init__(self, requests: Counter, latency: Histogram, buckets: int) -> None:
        self.requests, self.latency = requests, latency
        self.count, self.seconds = 0, 0.0
        self.buckets = [0] * buckets


class HttpTally:
    """Requests by (method, route template, status class) and their latency histogram."""

    def __init__(self, requests: Counter, latency: Histogram, methods: Collection[str]) -> None:
        self._requests, self._latency = requests, latency
        self._methods = frozenset(methods)
        self._bounds = tuple(latency._upper_bounds)  # ends with +Inf
        self._pending: dict[tuple[str, str | None, int], _Pending] = {}

    def record(self, method: str, route_path: str | None, status: int, seconds: float) -> None:
        if method not in self._methods:
            method = "OTHER"  # label values stay a closed set whatever clients send
        key = (method, route_path, status // 100)
        pending = self._pending.get(key)
        if pending is None:
            route = "unmatched" if route_path is None else "/" + route_path
            pending = self._pending[key] = _Pending(
                self._requests.labels(method, route, f"{status // 100}xx"),
                self._latency.labels(method, route),
                len(self._bounds),
            )
        pending.count += 1
        pending.seconds += seconds
        pending.buckets[bisect_left(self._bounds, seconds)] += 1  # first bound >= seconds: `le`

    def init_series(self, routes: Iterable[tuple[str, str]], classes: Iterable[str]) -> None:
        """Export every (method, route template) with each status class in `classes` as 0."""
        classes = tuple(classes)
        for method, route_path in routes:
            if method in self._methods:
                for status_class in classes:
                    self._requests.labels(method, "/" + route_path, status_class)

    def drain(self) -> None:
        for p in self._pending.values():
            if not p.count:
                continue
            # observe() takes one value at a time; the histogram's per-bucket values
            # (not cumulative: summed up at exposition) take a batch just the same.
            p.latency._sum.inc(p.seconds)
            for i, n in enumerate(p.buckets):
                if n:
                    p.latency._buckets[i].inc(n)
                    p.buckets[i] = 0
            # Last: a scrape (another process, any moment) that sees these requests counted
            # sees their latencies too.
            p.requests.inc(p.count)
            p.count, p.seconds = 0, 0.0


class Tally:
    """Increments of one labelled counter, kept in a dict until drained."""

    def __init__(self, counter: Counter, labels: tuple[str, ...]) -> None:
        self.counter = counter
        self.labels = labels
        self.pending = dict.fromkeys(labels, 0)

    def add(self, label: str) -> None:
        self.pending[label] += 1

    def drain(self) -> None:
        for label, count in self.pending.items():
            if count:
                self.pending[label] = 0
                self.counter.labels(label).inc(count)

    def init_series(self) -> None:
        for label in self.labels:
            self.counter.labels(label)

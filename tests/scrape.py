"""Reading /metrics in tests: samples by (name, labels), parsed by prometheus_client's parser."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    families: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        families = set()
        for family in text_string_to_metric_families(text):
            families.add(family.name)
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return cls(samples, frozenset(families))

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a series not exported (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum of every sample of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def names(self) -> set[str]:
        """Every sample name (with _total/_bucket/_count/_sum) and every family name."""
        return {name for name, _ in self.samples} | set(self.families)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(ls)[label] for n, ls in self.samples if n == name and label in dict(ls)}

    def minus(self, before: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - before.value(name, **labels)


async def scrape(client: httpx.AsyncClient) -> Scrape:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape.parse(r.text)


async def scrape_until(
    client: httpx.AsyncClient, ready: Callable[[Scrape], bool], timeout_s: float = 20.0
) -> Scrape:
    """Scrape until `ready` holds (values a worker publishes in the background), or the
    deadline passes: the last scrape is returned for the caller's assertions."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await scrape(client)
        if ready(got) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)

"""Fuzzing (schemathesis) against the app's own /openapi.json, on the real server.

Every operation of the live document gets schema-valid and schema-violating requests, and a
stateful run follows the document's links (create a build, then read, patch, vote on and
delete it as its owner). Every response is checked by schemathesis: no 5xx; status code,
content type, headers and body as documented; schema-violating input refused. Bounded by
FUZZ_EXAMPLES per operation and mode (~35 s here; pytest-timeout caps each test at 120 s).
A third pass sends a valid bearer token (an admin player's) with every request, so the routes
that need one (claim) are fuzzed past their 401 too.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode

from tests.auth_keys import Key, claims, provider_settings
from tests.conftest import Stores, clean_stores
from tests.server import ServerProcess

pytestmark = pytest.mark.server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
SEED = int(os.environ.get("FUZZ_SEED", "20261125"))
# CI replays the same cases every run; FUZZ_RANDOM=1 explores new ones (a local bug hunt).
DERANDOMIZE = os.environ.get("FUZZ_RANDOM") != "1"
# Rate limiting stays on (its headers and middleware are fuzzed too) with limits no fuzz
# run reaches.
HIGH = "1000000"
CONFIG_DICT: dict[str, Any] = {
    "seed": SEED,
    "checks": {
        # The document is at least as permissive as the server for what it can express,
        # but a schema cannot say "no NUL characters", "not only whitespace after
        # trimming" or "a known archetype in any case": schema-valid input can still
        # get a 422 (in the documented shape, which the other checks verify).
        "positive_data_acceptance": {"enabled": False},
    },
}
CONFIG = schemathesis.Config.from_dict(CONFIG_DICT)
SUPPRESSED = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
KEY = Key.new("fuzz-1", "EdDSA")
TOKEN = KEY.sign(claims("steam:76561198000000042", "Fuzzer", ["admin"], ttl_s=3 * 3600))


@pytest.fixture(scope="module")
def fuzz_server(stores: Stores) -> Iterator[ServerProcess]:
    asyncio.run(clean_stores(stores))
    limits = {
        f"RATE_LIMIT_{name}": HIGH
        for name in ("BUILD_CREATE", "VOTE", "FEEDBACK", "ANALYTICS", "READ", "EDIT")
    }
    server = ServerProcess(
        stores.database_url,
        stores.valkey_url,
        workers=1,
        RATE_LIMIT_ENABLED="true",
        **limits,
        **{k.upper(): v for k, v in provider_settings(auth_public_key=KEY.public_pem()).items()},
    ).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json", config=CONFIG)


@pytest.fixture(scope="module")
def authenticated_schema(fuzz_server: ServerProcess) -> Any:
    """The same document; every request carries a valid bearer token."""
    config = schemathesis.Config.from_dict(
        {**CONFIG_DICT, "auth": {"openapi": {"bearerAuth": {"bearer": TOKEN}}}}
    )
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json", config=config)


@pytest.mark.parametrize(
    ("mode", "schema"),
    [
        (GenerationMode.POSITIVE, "api_schema"),
        (GenerationMode.NEGATIVE, "api_schema"),
        (GenerationMode.POSITIVE, "authenticated_schema"),
    ],
)
def test_every_operation(request: pytest.FixtureRequest, mode: GenerationMode, schema: str) -> None:
    """Each operation of the live document, with schema-valid or schema-violating input."""
    api_schema: Any = request.getfixturevalue(schema)
    failures: dict[str, str] = {}
    statuses: dict[int, int] = {}
    labels, unsatisfiable = [], []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=SUPPRESSED,
            derandomize=DERANDOMIZE,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate()
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # Nothing to violate (no body, no constrained parameter): no negative cases.
            assert mode is GenerationMode.NEGATIVE, operation.label
            unsatisfiable.append(operation.label)
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[operation.label] = str(exc)[:3000]
    total = sum(statuses.values())
    print(f"{mode.value} {schema}: {total} requests, statuses {sorted(statuses.items())}")
    assert len(labels) >= 15
    assert failures == {}
    assert len(unsatisfiable) <= len(labels) // 2
    assert not [status for status in statuses if status >= 500]
    if schema == "authenticated_schema":  # the token is good: nothing is refused for it
        assert 401 not in statuses, statuses


def test_stateful_links(api_schema: Any) -> None:
    """Sequences that follow the links: a created build is read, patched, voted on and
    deleted by its owner (the link carries the build id and the owner's session)."""
    seen: set[tuple[str, int]] = set()
    calls = [0]

    # The linked workflow lives under /builds; other routes (admin) only dilute the walk.
    linked = api_schema.include(path_regex="^/api/v1/builds")

    class Workflow(linked.as_state_machine()):  # type: ignore[misc]
        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            seen.add((case.operation.label, response.status_code))
            calls[0] += 1

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=max(10, EXAMPLES),
            stateful_step_count=8,
            deadline=None,
            derandomize=DERANDOMIZE,
            database=None,
            suppress_health_check=SUPPRESSED,
        )
    )
    print(f"stateful: {calls[0]} requests, {len(seen)} (operation, status) pairs", sorted(seen))
    assert ("GET /api/v1/builds/{build_id}", 200) in seen, sorted(seen)
    # Owner-only operations succeeded: the links carried the creator's session along.
    owner_only = {"PATCH /api/v1/builds/{build_id}", "DELETE /api/v1/builds/{build_id}"}
    assert {(label, 200) for label in owner_only} & seen, sorted(seen)

"""Schema gate: the database's applied aerich migrations against the ones this code ships.

Each worker checks at start. While the two do not match (schema missing, behind, or holding
a migration this code does not know) the worker is not ready, its API routes answer 503
service_unavailable, and it checks again every SCHEMA_RECHECK_S and says why in one ERROR
line per minute. Once matched it never checks again: a migration Job for the next release
runs while this release's pods keep serving (expand first, contract one release later).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aggregators.tasks import cancel_and_wait

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient

AERICH_APP = "models"
LOG_EVERY_S = 60.0
FIX_MIGRATE = "run the migration job (kubectl apply -k k8s/migrate) or `make migrate`"
FIX_UNKNOWN = (
    "deploy the release that ships it, or downgrade the database with `aerich downgrade` "
    "from that release's image"
)
_MIGRATION_FILE = re.compile(r"^\d+_.+\.py$")

log = logging.getLogger("myashes.schema")


def shipped_migrations(directory: str | Path) -> tuple[str, ...]:
    """aerich version names (file names) in `directory`, in migration order."""
    path = Path(directory)
    if not path.is_dir():
        return ()
    names = [p.name for p in path.iterdir() if _MIGRATION_FILE.match(p.name)]
    return tuple(sorted(names, key=lambda n: (int(n.split("_", 1)[0]), n)))


@dataclass(frozen=True, slots=True)
class SchemaState:
    """One comparison: `status` is ok, missing, behind, unknown or unchecked."""

    status: str
    pending: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def message(self) -> str:
        """Cause and fix, as readiness, API 503s and the ERROR log line say it."""
        if self.status == "ok":
            return "Database schema matches this code"
        if self.status == "unchecked":
            return f"Database schema not verified yet (PostgreSQL: {self.error}); retrying"
        if self.status == "unknown":
            text = (
                f"Database schema is ahead of this code: migration(s) {', '.join(self.unknown)} "
                f"applied but not shipped with this release; {FIX_UNKNOWN}"
            )
            if self.pending:
                text += f" (also not applied: {', '.join(self.pending)})"
            return text
        if self.status == "missing":
            return (
                f"Database schema missing: no migration applied (this code ships "
                f"{len(self.pending)}, up to {self.pending[-1] if self.pending else '-'}); "
                f"{FIX_MIGRATE}"
            )
        return (
            f"Database schema is behind this code: migration(s) {', '.join(self.pending)} "
            f"not applied; {FIX_MIGRATE}"
        )


UNCHECKED = SchemaState("unchecked", error="NotCheckedYet")


def compare(shipped: tuple[str, ...], applied: list[str] | None) -> SchemaState:
    """`applied` None: no aerich table at all."""
    done = set(applied or ())
    pending = tuple(v for v in shipped if v not in done)
    unknown = tuple(sorted(done - set(shipped)))
    if unknown:
        return SchemaState("unknown", pending=pending, unknown=unknown)
    if not done:
        return SchemaState("missing", pending=pending)
    if pending:
        return SchemaState("behind", pending=pending)
    return SchemaState("ok")


class SchemaGate:
    """This worker's latest comparison; rechecks in the background until it matches."""

    def __init__(
        self,
        db: BaseDBAsyncClient,
        migrations_dir: str | Path,
        *,
        recheck_s: float,
        log_every_s: float = LOG_EVERY_S,
    ) -> None:
        self._db = db
        self.shipped = shipped_migrations(migrations_dir)
        self.recheck_s = recheck_s
        self.log_every_s = log_every_s
        self.state = UNCHECKED
        self.checks = 0  # completed checks (tests wait on it)
        self._logged_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ok(self) -> bool:
        return self.state.ok

    async def _applied(self) -> list[str] | None:
        rows = await self._db.execute_query_dict(
            "SELECT to_regclass('aerich') IS NOT NULL AS present"
        )
        if not rows[0]["present"]:
            return None
        rows = await self._db.execute_query_dict(
            "SELECT version FROM aerich WHERE app = $1", [AERICH_APP]
        )
        return [str(r["version"]) for r in rows]

    async def check(self) -> SchemaState:
        """Compare now; log an ERROR when not matched (at most once per log_every_s)."""
        before = self.state
        try:
            state = compare(self.shipped, await self._applied())
        except Exception as exc:  # PostgreSQL down or slow: readiness reports it too
            state = SchemaState("unchecked", error=type(exc).__name__)
        self.state = state
        self.checks += 1
        if state.ok:
            if before.status != "unchecked" or self._logged_at is not None:
                log.info("database schema now matches this code (%d migrations)", len(self.shipped))
        else:
            now = time.monotonic()
            if self._logged_at is None or now - self._logged_at >= self.log_every_s:
                self._logged_at = now
                log.error("not ready: %s", state.message)
        return state

    def start(self) -> None:
        """Recheck every recheck_s until matched (no task at all when already matched)."""
        if not self.state.ok:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="schema-gate")

    async def _run(self) -> None:
        while not self.state.ok:
            await asyncio.sleep(self.recheck_s)
            await self.check()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

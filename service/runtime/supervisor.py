"""Orderly stop of Sanic's process tree whoever sends the signal and whenever it comes.

Kubernetes signals PID 1 only; systemd (KillMode=control-group), `kill -- -PGID` and a
terminal's Ctrl-C signal every process of the group at once, also while it is starting.
Sanic 25.12 does not survive all of these (sanic-org/sanic#2997, open; the wait_for_ack part
has a fix proposed in sanic-org/sanic#3063, unmerged), so `python -m service run` carries
these minimal workarounds, each covered by tests/test_stop_signals.py:

* Main process, `hold_stop_signals()` until Sanic takes over: a signal during the embedded
  servers' start or the development migrations is recorded; the server then does not start
  and the embedded servers are stopped (exit 0). Sanic's default left them running.
* Main process, `install()`:
  1. Sanic's worker-state Manager process (multiprocessing, a child in the same group)
     never sees SIGINT/SIGTERM: killed by a group SIGTERM, every later state update in the
     main process and the workers raised BrokenPipeError and the main process exited 1.
  2. Workers are started with SIGINT/SIGTERM ignored and blocked (inherited) until the app
     records them:
     a signal that arrived while a worker imported killed it half-started; the main process
     repeats SIGINT to the workers still alive while it stops (they ignore repeats), and
     waits for every worker, also the ones Sanic skips once it has terminated them.
  3. A stop signal ends the wait for the workers' start acknowledgements: Sanic re-queued
     its own stop message forever there and the main process hung (#2997 / #3063).
  4. A repeated signal while stopping is ignored: Sanic's answer, "Shutdown interrupted.
     Killing.", SIGKILLed workers in their final flush and left with os._exit, skipping the
     embedded servers' stop.
* Worker, `install_worker()`: a signal is recorded from the moment the app is created and
  turned into the graceful stop once the worker serves; `ignore_stop_signals()` after the
  first, so none interrupts the final flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker
from types import FrameType
from typing import Any

log = logging.getLogger("myashes.supervisor")

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
RESEND_S = 0.5  # while stopping, workers still alive get SIGINT again this often
_installed = False


@contextmanager
def _children_deaf_to_stop_signals() -> Iterator[None]:
    """Processes started in this block inherit SIGINT/SIGTERM ignored and blocked (both
    survive fork and exec; the mask alone is not enough: multiprocessing's resource tracker
    start unblocks them). This process holds them meanwhile: blocked signals are never
    discarded as ignored, and reach the restored handler when the mask is restored."""
    # Started first: its own start unblocks SIGINT/SIGTERM (and would let one be ignored).
    resource_tracker.ensure_running()
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    caught = signal.sigpending() & STOP_SIGNALS  # setting SIG_IGN would discard these
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in caught:
            signal.raise_signal(sig)  # pending again, delivered below
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _manager_deaf_to_stop_signals() -> Any:
    """multiprocessing.Manager() whose server process ignores SIGINT and SIGTERM; it is
    still stopped by Sanic's sync_manager.shutdown() at the end of serve()."""
    with _children_deaf_to_stop_signals():
        return multiprocessing.Manager()


_received: list[int] = []


def _record(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)


def hold_stop_signals() -> None:
    """Main process, before serving: a stop signal is recorded, not acted on, so embedded
    servers and migrations are never interrupted half-way; `stop_requested()` is checked
    between the steps, and the server is not started at all once it is set."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _record)


def stop_requested() -> int | None:
    return _received[0] if _received else None


def install(stop_budget_s: float) -> None:
    """Patch Sanic's main-process side (idempotent); call before Sanic.serve().

    `stop_budget_s`: how long the main process waits for stopping workers (drain + final
    flush + margin) before it gives up on them."""
    global _installed
    if _installed:
        return
    import sanic.mixins.startup as startup
    from sanic.worker.manager import WorkerManager

    startup.Manager = _manager_deaf_to_stop_signals  # type: ignore[attr-defined]

    start: Callable[[WorkerManager], None] = WorkerManager.start

    def start_deaf_workers(self: WorkerManager) -> None:
        signum = stop_requested()
        if signum is not None:  # came after the last check, before Sanic's handlers
            self.shutdown_signal(signum, None)  # type: ignore[no-untyped-call]
            return
        with _children_deaf_to_stop_signals():
            start(self)

    join: Callable[[WorkerManager], None] = WorkerManager.join

    def join_until_workers_stopped(self: WorkerManager) -> None:
        join(self)  # Sanic skips the workers it has terminated: wait for those too
        deadline = time.monotonic() + stop_budget_s
        while True:
            alive = [p for p in self.transient_processes if p.pid and p.is_alive()]
            if not alive:
                return
            if time.monotonic() > deadline:
                log.error(
                    "workers %s still run after %.0f s", [p.pid for p in alive], stop_budget_s
                )
                return
            for process in alive:  # one that ignored the first (still importing) hears this
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGINT)
            time.sleep(RESEND_S)

    all_acked: Callable[[WorkerManager], bool] = WorkerManager._all_workers_ack

    def acked_or_stopping(self: WorkerManager) -> bool:
        return bool(self._shutting_down) or all_acked(self)

    shutdown_signal = WorkerManager.shutdown_signal

    def shutdown_once(self: WorkerManager, signum: int, frame: FrameType | None) -> None:
        if self._shutting_down:
            log.info(
                "%s while stopping: ignored, the workers finish their final flush "
                "(SIGKILL forces a stop and loses what they hold)",
                signal.Signals(signum).name,
            )
            return
        shutdown_signal(self, signum, frame)  # type: ignore[no-untyped-call]

    WorkerManager.start = start_deaf_workers  # type: ignore[method-assign]
    WorkerManager.join = join_until_workers_stopped  # type: ignore[method-assign]
    WorkerManager._all_workers_ack = acked_or_stopping  # type: ignore[method-assign]
    WorkerManager.shutdown_signal = shutdown_once  # type: ignore[method-assign]
    _installed = True


def in_server_worker() -> bool:
    """True in a Sanic server worker process (not the main process, not ASGI/tests)."""
    return os.environ.get("SANIC_WORKER_NAME", "").startswith("Sanic-Server")


def install_worker(app: Any, on_stop: Callable[[Any], None]) -> None:
    """In a server worker: route SIGINT/SIGTERM to `on_stop(app)` from now on, none lost.

    Until the event loop runs, a signal is only recorded (it arrived blocked, inherited from
    the main process, and is unblocked here). Sanic's own setup would then set SIG_IGN,
    which discards a pending signal, and install app.stop, which stops the loop inside the
    start-up events ("Event loop stopped before Future completed"): it is replaced by one
    that installs `on_stop` and replays a recorded signal.
    """
    import sanic.server.runners as runners

    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    # Inherited: ignored, and blocked (one that came meanwhile is pending: recorded now).
    for sig in STOP_SIGNALS:
        signal.signal(sig, record)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    setup = runners._setup_system_signals

    def setup_stop_signals(
        sanic_app: Any, run_multiple: bool, register_sys_signals: bool, loop: Any
    ) -> None:
        if sanic_app is not app or not register_sys_signals:
            setup(sanic_app, run_multiple, register_sys_signals, loop)
            return
        os.environ["SANIC_WORKER_PROCESS"] = "true"  # what Sanic's version also sets
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_stop, app)
        if received:
            log.info(
                "%s arrived while the worker started: stopping now",
                signal.Signals(received[0]).name,
            )
            loop.call_soon(on_stop, app)

    runners._setup_system_signals = setup_stop_signals  # type: ignore[assignment]


def ignore_stop_signals() -> None:
    """In a worker, from its first stop signal on: later ones are ignored, process-wide.

    Sanic removes the loop's handlers when the loop stops, which restores the default
    actions: a SIGTERM or SIGINT the main process forwards would then kill the worker in
    its final flush. Removed here first (so Sanic's removal finds nothing to restore)."""
    loop = asyncio.get_running_loop()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # none in between
    try:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)

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
  2. Workers are started with SIGINT/SIGTERM blocked (the mask is inherited): a signal that
     arrives while a worker imports and opens its stores stays pending instead of killing it
     half-started (KeyboardInterrupt) before it could flush.
  3. A stop signal ends the wait for the workers' start acknowledgements: Sanic re-queued
     its own stop message forever there and the main process hung (#2997 / #3063).
  4. A repeated signal while stopping is ignored: Sanic's answer, "Shutdown interrupted.
     Killing.", SIGKILLed workers in their final flush and left with os._exit, skipping the
     embedded servers' stop.
* Worker, `install_worker()`: a signal is recorded from the moment the app is created and
  turned into the graceful stop once the worker serves; after the first, later signals
  stay blocked, so none interrupts the final flush.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("myashes.supervisor")

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
_installed = False


def _manager_deaf_to_stop_signals() -> Any:
    """multiprocessing.Manager() whose server process never sees SIGINT/SIGTERM: it is
    forked with them blocked (the mask is inherited and it never unblocks). In this process
    they stay pending meanwhile, and are delivered when the mask is restored.

    The Manager is still stopped by Sanic's sync_manager.shutdown() at the end of serve()."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return multiprocessing.Manager()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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


def install() -> None:
    """Patch Sanic's main-process side (idempotent); call before Sanic.serve()."""
    global _installed
    if _installed:
        return
    import sanic.mixins.startup as startup
    from sanic.worker.manager import WorkerManager

    startup.Manager = _manager_deaf_to_stop_signals  # type: ignore[attr-defined]

    start: Callable[[WorkerManager], None] = WorkerManager.start

    def start_with_stop_signals_held(self: WorkerManager) -> None:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            signum = stop_requested()
            if signum is not None:  # came after the last check, before Sanic's handlers
                self.shutdown_signal(signum, None)  # type: ignore[no-untyped-call]
                return
            start(self)
        finally:  # a signal that came meanwhile is delivered here, to shutdown_signal
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

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

    WorkerManager.start = start_with_stop_signals_held  # type: ignore[method-assign]
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


def block_stop_signals() -> None:
    """From the first stop signal on, later ones stay pending for good: Sanic removes the
    handlers when the loop stops, and a SIGTERM forwarded by the main process would then
    kill the worker in its final flush (default action)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

"""Simulate independent runs at the same time, one worker process each (``compare(jobs=2)``).

Why processes: a run is pure Python (or mypyc-compiled code that holds the GIL), so two runs in
threads would take as long as one after the other.  The baseline and the GradPIM run share
nothing, so two processes on two cores halve the wall time of ``compare``.

How the pieces fit:

- Workers are started with the ``spawn`` context, never ``fork``: the parent may be running
  threads (rich's refresh thread), and a forked child of a threaded process can deadlock.
- Each worker has its own one-way pipe to the parent.  It sends ``started`` once it can be
  interrupted, ``progress`` for every finished task (the parent calls that run's hook, so the
  CLI's progress bars advance together; a few hundred small messages per run cost nothing next
  to the simulation), and a last message: the :class:`RunResult`, an interruption that left no
  result, or the error.
- Ctrl-C: a terminal sends SIGINT to the whole foreground process group.  Workers start with
  SIGINT ignored, so a Ctrl-C while they import cannot print a traceback; once running, their
  first SIGINT raises ``KeyboardInterrupt``, which ``simulate`` turns into a result marked
  ``interrupted``, and later ones are ignored.  The parent only records the signal (an exception
  raised half-way through reading a message would desynchronize the pipe), forwards it to the
  workers (in case it reached the parent alone, as a notebook's interrupt button does), and
  keeps collecting for at most :data:`INTERRUPT_GRACE_S`; a second Ctrl-C stops waiting.
  Every worker is joined (or terminated) before :func:`run_parallel` returns or raises.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from gradpimsim.config.pim import PimConfig
from gradpimsim.system.config import RunConfig
from gradpimsim.system.executor import TaskRecord
from gradpimsim.system.results import RunResult
from gradpimsim.system.simulate import ProgressHook, SinkFactory, simulate

#: Set to "1" (the test suite does) to attach the independent protocol checker, raising at the
#: first violation, to every controller a worker builds: runs in workers are then checked like
#: runs in the parent process (where ``controller.OBSERVER_FACTORIES`` does it).
ONLINE_CHECK_ENV = "GRADPIMSIM_ONLINE_CHECK"
#: After a Ctrl-C, how long the parent waits for the workers' interrupted results.
INTERRUPT_GRACE_S = 30.0
#: How often the parent looks at interrupts and deadlines while waiting for messages.
_POLL_S = 0.1
#: How long a finished (or terminated) worker gets to exit before it is stopped harder.
_JOIN_S = 5.0


def picklable(obj: object) -> bool:
    """Whether ``obj`` can be sent to a worker process."""
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to simulate one run (it must all pickle)."""

    run: RunConfig
    sink_factory: SinkFactory | None = None
    pim_config: PimConfig | None = None


def run_parallel(specs: dict[str, RunSpec],
                 hooks: dict[str, ProgressHook | None]) -> dict[str, RunResult | None]:
    """Simulate every spec in its own process at once; each run's result by name.

    A name maps to ``None`` if its run was interrupted before it had a result.  A run that
    failed stops the others, and its exception (the first, in the order of ``specs``) is
    raised here, with the worker's traceback as a note.
    """
    ctx = multiprocessing.get_context("spawn")
    workers: list[_Worker] = []
    with _ParentInterrupts() as interrupts:
        try:
            for name, spec in specs.items():
                workers.append(_Worker.start(ctx, name, spec, interrupts.enabled))
            interrupts.arm()
            _collect(workers, hooks, interrupts)
        finally:
            for w in workers:
                w.shutdown()
    for w in workers:
        if w.error is not None:
            raise w.error
    return {w.name: w.result for w in workers}


# ---------------------------------------------------------------------- parent side
class _ParentInterrupts:
    """SIGINT in the parent while workers run: ignored while they start, then only recorded.

    Only the main thread may set signal handlers (and only it receives KeyboardInterrupt), so
    elsewhere this does nothing.  If SIGINT was already ignored, it stays ignored, here and in
    the workers (``enabled`` is False).
    """

    def __init__(self) -> None:
        self.signals = 0  # SIGINTs received
        self.requested = False  # a SIGINT, or a progress hook raising KeyboardInterrupt
        self._active = threading.current_thread() is threading.main_thread()
        self._old: Any = None

    def __enter__(self) -> _ParentInterrupts:
        if self._active:
            # Spawned children inherit an ignored SIGINT (and Python then leaves it ignored).
            self._old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        return self

    @property
    def enabled(self) -> bool:
        return self._old is not signal.SIG_IGN

    def arm(self) -> None:
        if self._active and self.enabled:
            signal.signal(signal.SIGINT, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._active:
            signal.signal(signal.SIGINT,
                          self._old if self._old is not None else signal.default_int_handler)


@dataclass
class _Worker:
    """One worker process as the parent sees it."""

    name: str
    process: BaseProcess
    conn: Connection
    started: bool = False  # it can take a SIGINT now
    signalled: bool = False  # the parent forwarded one
    finished: bool = False  # its last message arrived (or it is gone)
    result: RunResult | None = None
    error: BaseException | None = field(default=None, repr=False)

    @classmethod
    def start(cls, ctx: Any, name: str, spec: RunSpec, interruptible: bool) -> _Worker:
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker_main, args=(spec, writer, interruptible), daemon=True,
                           name=f"gradpimsim-{name}")
        proc.start()
        writer.close()  # the worker has its own copy: end of file here means it has exited
        return cls(name, proc, reader)

    def interrupt(self) -> None:
        """Forward a SIGINT once (a worker that has not started yet gets it when it starts)."""
        if self.started and not self.signalled and not self.finished and self.process.pid:
            self.signalled = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGINT)

    def receive(self, hook: ProgressHook | None, interrupts: _ParentInterrupts) -> None:
        """Handle the worker's next message."""
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            self.finished = True
            self.process.join(_JOIN_S)
            self.error = RuntimeError(f"the {self.name} worker process exited (code "
                                      f"{self.process.exitcode}) without a result")
            return
        kind = msg[0]
        if kind == "started":
            self.started = True
        elif kind == "progress":
            _call_hook(hook, msg[1], msg[2], msg[3], interrupts)
        else:
            self.finished = True
            if kind == "result":
                self.result = msg[1]
            elif kind == "error":
                self.error = _rebuild_error(*msg[1])

    def shutdown(self) -> None:
        """Wait for the process to exit, stopping it if needed: no worker outlives the call."""
        self.process.join(_JOIN_S if self.finished else 0)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(_JOIN_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
        self.process.close()


def _call_hook(hook: ProgressHook | None, rec: TaskRecord, done: int, total: int,
               interrupts: _ParentInterrupts) -> None:
    if hook is None:
        return
    try:
        hook(rec, done, total)
    except KeyboardInterrupt:  # as in one process: a hook may stop the runs this way
        interrupts.requested = True


def _collect(workers: list[_Worker], hooks: dict[str, ProgressHook | None],
             interrupts: _ParentInterrupts) -> None:
    """Deliver progress and gather results until every worker is done, failed or timed out."""
    pending = {w.conn: w for w in workers}
    deadline: float | None = None
    while pending:
        if interrupts.requested:
            for w in pending.values():
                w.interrupt()
            if deadline is None:
                deadline = time.monotonic() + INTERRUPT_GRACE_S
            if interrupts.signals > 1:  # Ctrl-C twice: stop waiting
                deadline = time.monotonic()
        timeout = _POLL_S
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                return
        for conn in wait(list(pending), timeout):
            w = pending[conn]  # type: ignore[index]
            w.receive(hooks.get(w.name), interrupts)
            if w.finished:
                del pending[conn]  # type: ignore[arg-type]
                if w.error is not None:
                    return  # one run failed: do not wait for the others


# ---------------------------------------------------------------------- worker side
def _worker_main(spec: RunSpec, conn: Connection, interruptible: bool) -> None:
    """A worker process: simulate one run; report progress and the outcome to the parent."""
    if interruptible:
        signal.signal(signal.SIGINT, _interrupt_once)
    msg: tuple[Any, ...] = ("interrupted",)
    try:
        msg = _simulate(spec, conn)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # from here on the outcome must get out
    except KeyboardInterrupt:  # outside the simulation loop, which handles its own; at most one
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _close_sinks(spec.sink_factory)  # before the parent hears of the end: files complete
    except Exception as exc:
        msg = ("error", _portable_error(exc))
    try:
        conn.send(msg)
        conn.close()
    except OSError:  # the parent is gone: there is nobody left to tell
        pass


def _simulate(spec: RunSpec, conn: Connection) -> tuple[Any, ...]:
    try:
        checkers = _online_checkers()
        _send(conn, ("started",))
        res = simulate(spec.run, progress=_ForwardProgress(conn),
                       sink_factory=spec.sink_factory, pim_config=spec.pim_config)
        for checker in checkers:
            report = checker.finish()
            if not report.ok:
                raise RuntimeError(f"protocol violations: {report.violations[:3]}")
    except Exception as exc:
        return ("error", _portable_error(exc))
    return ("result", res)


def _online_checkers() -> list[Any]:
    """With ``ONLINE_CHECK_ENV`` set, a raising checker on every controller (see there)."""
    if os.environ.get(ONLINE_CHECK_ENV) != "1":
        return []
    from gradpimsim.checker import ProtocolChecker
    from gradpimsim.controller import controller

    checkers: list[ProtocolChecker] = []

    def factory(cfg: Any, channel: int, pim: Any) -> Any:
        checker = ProtocolChecker(cfg, pim, raise_on_violation=True)
        checkers.append(checker)
        return checker.observe

    controller.OBSERVER_FACTORIES.append(factory)
    return checkers


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    """First SIGINT: stop the simulation; later ones (the parent forwards one) are ignored.

    Disarming before raising means a worker sees at most one KeyboardInterrupt, so the code
    that reports the outcome cannot itself be interrupted.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _send(conn: Connection, msg: tuple[Any, ...]) -> None:
    """Send with SIGINT held back, so an interrupt never leaves half a message in the pipe."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        conn.send(msg)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class _ForwardProgress:
    """The worker's progress hook: every finished task goes to the parent's hook."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __call__(self, rec: TaskRecord, done: int, total: int) -> None:
        _send(self.conn, ("progress", rec, done, total))


def _close_sinks(sinks: SinkFactory | None) -> None:
    close = getattr(sinks, "close", None)
    if callable(close):
        close()


def _portable_error(exc: BaseException) -> tuple[Any, ...]:
    """An exception as (class, args, attributes, traceback text), which pickles.

    Pickling an exception calls ``cls(*args)`` when it is loaded, which breaks for exceptions
    whose ``__init__`` takes other arguments than it stores (``ConfigError(field, message)``),
    so the parent rebuilds it without calling ``__init__``.
    """
    text = "".join(traceback.format_exception(exc))
    state = (type(exc), exc.args, dict(getattr(exc, "__dict__", {})))
    if not picklable(state):
        state = (RuntimeError, (f"{type(exc).__name__}: {exc}",), {})
    return (*state, text)


def _rebuild_error(cls: type[BaseException], args: tuple[Any, ...], attrs: dict[str, Any],
                   text: str) -> BaseException:
    try:
        exc = cls.__new__(cls, *args)
        exc.args = args
        exc.__dict__.update(attrs)
    except Exception:
        exc = RuntimeError(f"{cls.__name__}: {args}")
    exc.add_note(f"raised in a worker process:\n{text}")
    return exc

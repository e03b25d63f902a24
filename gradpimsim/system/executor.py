"""The host NPU executing one training iteration's tasks as SimPy processes.

Execution model (stated exactly, because results depend on it):

- **One compute engine, tasks in order.**  The NPU computes its tasks one at a time in
  ``npu_order(schedule, update_policy, pim)``: the program order (forward, loss, backward in
  autograd order, then the optimizer updates), with two variations.  With PIM the update tasks
  are not the NPU's.  Under the ``overlap`` update policy a host update runs as soon as its
  parameter allows ("optimizer in backward"): it moves to just after the last task it must
  follow (its hazards).  A task computes for its ``NPUModel.cost`` cycles, converted to DRAM
  cycles (rounded up).
- **DMA with double buffering.**  A task's input transfers are issued when the previous task
  starts computing (one task of prefetch: two buffers).  Compute starts when the inputs have
  arrived and the previous task has finished computing; outputs are written after compute,
  overlapping the next tasks; a task is *done* when its writes are complete.
- **Hazards.**  Every access waits for what the hazard analysis says it must
  (``gradpimsim.host.hazards``): a read for the writes it must see (read after write), a write
  for the reads of the value it replaces (write after read) and for earlier writes (write after
  write), each at the granularity of one tensor of one task: the access waits until the other
  task's transfers of that tensor are complete.  With the in-order NPU most of these hold by
  construction; the ones that bind are between the NPU and the PIM units.
- **Transfers** are ``NPUModel``'s DMA chunks (tiling re-reads included), each cut into
  per-row requests by the memory system.
- **With PIM** the update tasks run inside the DRAM.  Under ``overlap`` (the PIM run's default)
  a parameter's GradPIM program is handed to the channels holding its data as soon as its
  hazards allow: its gradient is complete (every weight-gradient contribution written) and
  every read of the weights it overwrites in this iteration is done.  Under ``after-backward``
  it also waits for the end of the whole backward pass.  The program runs alongside the NPU's
  traffic, contending for banks and the command bus.  The iteration ends when the NPU's last
  write and the last PIM command are done.

Every task records when each of its tensor accesses started and ended (:class:`AccessTime`),
so ``gradpimsim.system.verify`` can prove the executed schedule respected every hazard.

The legacy task order (``Dataflow.legacy()``) keeps the executor of gradpimsim 0.1 exactly:
reads wait for the whole writing task to finish, and a PIM update waits for its weight-gradient
tasks only (no other hazard of that order can bind), so old results reproduce bit for bit.

Phases: ``forward`` (forward tasks and the loss), ``backward`` (data and weight gradients),
``update`` (host update tasks or PIM programs); each reports its first start and last end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from gradpimsim.config import MemoryConfig
from gradpimsim.host.allocator import Allocator
from gradpimsim.host.hazards import Wait
from gradpimsim.host.npu import NPUModel, TaskCost, Transfer
from gradpimsim.host.training import PHASE_OF_KIND, TrainingSchedule
from gradpimsim.system.memory import MemorySystem

PHASES = ("forward", "backward", "update")
UPDATE_POLICIES = ("overlap", "after-backward")


@dataclass
class AccessTime:
    """When one task's DRAM accesses of one tensor ran: first submitted, last completed."""

    tensor: str
    mode: str  # "read" or "write"
    start: int
    end: int


@dataclass
class TaskRecord:
    """When one task ran (DRAM cycles) and what it moved."""

    task: str
    kind: str
    layer: str | None
    engine: str  # "npu" or "pim"
    issue: int = -1  # first input transfer issued (NPU) / program handed over (PIM)
    compute_start: int = -1
    compute_end: int = -1
    end: int = -1
    compute_cycles: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    accesses: list[AccessTime] = field(default_factory=list)

    @property
    def phase(self) -> str:
        return PHASE_OF_KIND[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "kind": self.kind, "phase": self.phase, "layer": self.layer,
                "engine": self.engine, "issue": self.issue, "compute_start": self.compute_start,
                "compute_end": self.compute_end, "end": self.end,
                "compute_cycles": self.compute_cycles, "read_bytes": self.read_bytes,
                "write_bytes": self.write_bytes}


TaskHook = Callable[[TaskRecord, int], None]
UpdateHook = Callable[[str, dict[str, Any]], None]
#: Called when a task's writes of one tensor are complete: (task, tensor, cycle).
WriteHook = Callable[[str, str, int], None]


def npu_order(schedule: TrainingSchedule, update_policy: str, pim: bool) -> list[str]:
    """The NPU's task sequence (see the module docstring)."""
    dag = schedule.dag
    program = schedule.order()
    if pim:
        return [t for t in program if dag.nodes[t]["kind"] != "update"]
    if update_policy == "after-backward":
        return program
    updates = [t for t in program if dag.nodes[t]["kind"] == "update"]
    rest = [t for t in program if dag.nodes[t]["kind"] != "update"]
    pos = {t: i for i, t in enumerate(rest)}
    after: dict[int, list[str]] = {}
    for u in updates:
        last = max((pos[w.pred] for w in schedule.waits.get(u, ()) if w.pred in pos),
                   default=len(rest) - 1)
        after.setdefault(last, []).append(u)
    out = []
    for i, t in enumerate(rest):
        out.append(t)
        out += after.get(i, [])
    return out


class Executor:
    """Builds the task processes of one iteration in a SimPy environment."""

    def __init__(self, env: simpy.Environment, cfg: MemoryConfig, schedule: TrainingSchedule,
                 costs: dict[str, TaskCost], npu: NPUModel, alloc: Allocator,
                 memory: MemorySystem, *, pim_program: Callable[[str], Any] | None = None,
                 update_policy: str = "after-backward",
                 on_task_done: TaskHook | None = None,
                 on_host_update: UpdateHook | None = None,
                 on_write_done: WriteHook | None = None) -> None:
        if update_policy not in UPDATE_POLICIES:
            raise ValueError(f"unknown update policy {update_policy!r}")
        self.env = env
        self.cfg = cfg
        self.schedule = schedule
        self.costs = costs
        self.alloc = alloc
        self.memory = memory
        self.pim_program = pim_program
        self.update_policy = update_policy
        self.on_task_done = on_task_done
        self.on_host_update = on_host_update
        self.on_write_done = on_write_done
        self.ns_per_cycle = cfg.timing.tCK_ns
        self.legacy = schedule.dataflow.order == "legacy"
        self.records: dict[str, TaskRecord] = {}
        dag = schedule.dag
        offload = pim_program is not None
        self.npu_tasks = npu_order(schedule, update_policy, offload)
        self.pim_tasks = [t for t in schedule.order()
                          if offload and dag.nodes[t]["kind"] == "update"]
        every = self.npu_tasks + self.pim_tasks
        self.finished: dict[str, simpy.Event] = {t: env.event() for t in every}
        #: (task, tensor) -> fires when that task's reads / writes of the tensor are complete
        self.read_done: dict[tuple[str, str], simpy.Event] = {}
        self.write_done: dict[tuple[str, str], simpy.Event] = {}
        for t in every:
            node = dag.nodes[t]
            for a in node["reads"]:
                self.read_done.setdefault((t, a.tensor), env.event())
            for a in node["writes"]:
                self.write_done.setdefault((t, a.tensor), env.event())
        self.compute_started: dict[str, simpy.Event] = {t: env.event() for t in self.npu_tasks}
        self.compute_done: dict[str, simpy.Event] = {t: env.event() for t in self.npu_tasks}
        backward = [t for t in every if PHASE_OF_KIND[dag.nodes[t]["kind"]] == "backward"]
        self.backward_done = simpy.AllOf(env, [self.finished[t] for t in backward])
        prev: str | None = None
        for t in self.npu_tasks:
            node = dag.nodes[t]
            self.records[t] = TaskRecord(t, node["kind"], node.get("layer"), "npu")
            env.process(self._npu_task(t, prev))
            prev = t
        for t in self.pim_tasks:
            node = dag.nodes[t]
            self.records[t] = TaskRecord(t, node["kind"], node.get("layer"), "pim")
            env.process(self._pim_task(t))
        self.all_done = simpy.AllOf(env, list(self.finished.values()))

    # ------------------------------------------------------------------ helpers
    def _cycles(self, cost: TaskCost) -> int:
        return math.ceil(cost.ns / self.ns_per_cycle - 1e-9) if cost.ns > 0 else 0

    def _ranges(self, tr: Transfer) -> list[tuple[int, int]]:
        return [(s.addr, s.nbytes) for s in self.alloc.segments_for(tr.tensor_name, tr.offset,
                                                                     tr.nbytes)]

    def _finish(self, rec: TaskRecord) -> None:
        rec.end = int(self.env.now)
        self.finished[rec.task].succeed()
        if self.on_task_done is not None:
            self.on_task_done(rec, rec.end)

    def _waits(self, t: str, tensor: str, access: str) -> list[simpy.Event]:
        """Pending events ``t``'s ``access`` of ``tensor`` must wait for."""
        out = []
        for w in self.schedule.waits.get(t, ()):
            if w.tensor != tensor or w.access != access or (self.legacy and w.kind != "raw"):
                continue
            ev = self._event_of(w)
            if ev is not None and not ev.triggered:
                out.append(ev)
        return out

    def _event_of(self, w: Wait) -> simpy.Event | None:
        if self.legacy:
            return self.finished.get(w.pred)
        table = self.read_done if w.pred_access == "read" else self.write_done
        return table.get((w.pred, w.tensor))

    def _track(self, rec: TaskRecord, tensor: str, mode: str, events: list[simpy.Event],
               start: int) -> None:
        """Record the access window and fire the per-tensor event when its transfers land."""
        done = (self.read_done if mode == "read" else self.write_done)[(rec.task, tensor)]
        env = self.env

        def land(_e: Any = None) -> None:
            end = int(env.now)
            rec.accesses.append(AccessTime(tensor, mode, start, end))
            if mode == "write" and self.on_write_done is not None:
                self.on_write_done(rec.task, tensor, end)
            done.succeed()

        if not events:
            land()
            return
        simpy.AllOf(env, events).callbacks.append(land)

    # ------------------------------------------------------------------ processes
    def _npu_task(self, t: str, prev: str | None) -> Generator[simpy.Event, Any, None]:
        env = self.env
        cost = self.costs[t]
        rec = self.records[t]
        rec.compute_cycles = self._cycles(cost)
        node = self.schedule.dag.nodes[t]
        if prev is not None:
            yield self.compute_started[prev]  # the second buffer frees when prev computes
        rec.issue = int(env.now)
        reads: list[simpy.Event] = []
        per_tensor: dict[str, tuple[int, list[simpy.Event]]] = {}
        for tr in cost.transfers:
            if tr.is_write:
                continue
            waits = self._waits(t, tr.tensor_name, "read")
            if waits:
                yield simpy.AllOf(env, waits)
            ev = self.memory.transfer(self._ranges(tr), False)
            reads.append(ev)
            per_tensor.setdefault(tr.tensor_name, (int(env.now), []))[1].append(ev)
            rec.read_bytes += tr.nbytes
        for tensor in dict.fromkeys(a.tensor for a in node["reads"]):
            start, evs = per_tensor.get(tensor, (int(env.now), []))
            self._track(rec, tensor, "read", evs, start)
        if reads:
            yield simpy.AllOf(env, reads)
        if prev is not None:
            yield self.compute_done[prev]
        rec.compute_start = int(env.now)
        self.compute_started[t].succeed()
        if rec.compute_cycles:
            yield env.timeout(rec.compute_cycles)
        rec.compute_end = int(env.now)
        if rec.kind == "update" and self.on_host_update is not None:
            self.on_host_update(t, node)
        self.compute_done[t].succeed()
        writes: list[simpy.Event] = []
        per_tensor = {}
        for tr in cost.transfers:
            if not tr.is_write:
                continue
            waits = self._waits(t, tr.tensor_name, "write")
            if waits:
                yield simpy.AllOf(env, waits)
            ev = self.memory.transfer(self._ranges(tr), True)
            writes.append(ev)
            per_tensor.setdefault(tr.tensor_name, (int(env.now), []))[1].append(ev)
            rec.write_bytes += tr.nbytes
        for tensor in dict.fromkeys(a.tensor for a in node["writes"]):
            start, evs = per_tensor.get(tensor, (int(env.now), []))
            self._track(rec, tensor, "write", evs, start)
        if writes:
            yield simpy.AllOf(env, writes)
        self._finish(rec)

    def _pim_task(self, t: str) -> Generator[simpy.Event, Any, None]:
        env = self.env
        rec = self.records[t]
        if self.legacy:  # gradpimsim 0.1: the weight-gradient tasks, nothing else binds
            preds = [self.finished[w.pred] for w in self.schedule.waits.get(t, ())
                     if w.kind == "raw"]
            preds = list(dict.fromkeys(preds))
            if preds:
                yield simpy.AllOf(env, preds)
        else:
            waits = [ev for w in self.schedule.waits.get(t, ())
                     if (ev := self._event_of(w)) is not None and not ev.triggered]
            if self.update_policy == "after-backward" and not self.backward_done.triggered:
                waits.append(self.backward_done)
            if waits:
                yield simpy.AllOf(env, waits)
        rec.issue = rec.compute_start = int(env.now)
        assert self.pim_program is not None
        program = self.pim_program(t)
        yield self.memory.run_program(program.units, program.prologue)
        rec.compute_end = int(env.now)
        node = self.schedule.dag.nodes[t]
        for a in node["reads"]:
            rec.accesses.append(AccessTime(a.tensor, "read", rec.issue, rec.compute_end))
            self.read_done[(t, a.tensor)].succeed()
        for tensor in dict.fromkeys(a.tensor for a in node["writes"]):
            rec.accesses.append(AccessTime(tensor, "write", rec.issue, rec.compute_end))
            self.write_done[(t, tensor)].succeed()
        self._finish(rec)

    # ------------------------------------------------------------------ results
    def phases(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for phase in PHASES:
            recs = [r for r in self.records.values() if r.phase == phase and r.end >= 0]
            if not recs:
                out[phase] = {"start": 0, "end": 0, "cycles": 0}
                continue
            start = min(r.issue for r in recs)
            end = max(r.end for r in recs)
            out[phase] = {"start": start, "end": end, "cycles": end - start}
        return out

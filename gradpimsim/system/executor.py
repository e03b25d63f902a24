"""The host NPU executing one training iteration's task DAG as SimPy processes.

Execution model (stated exactly, because results depend on it):

- **One compute engine, tasks in order.**  The NPU computes the tasks of
  ``TrainingSchedule.order()`` one at a time (forward, loss, backward, then the optimizer
  updates, as ``optimizer.step()`` follows ``loss.backward()``).  A task computes for its
  ``NPUModel.cost`` cycles, converted to DRAM cycles (rounded up).
- **DMA with double buffering.**  A task's input transfers are issued when the previous task
  starts computing (one task of prefetch: two buffers), and each input transfer also waits until
  every earlier task that writes that tensor has finished writing it (data moves through DRAM:
  a read never overtakes the write that produces its bytes).  Compute starts when the task's
  inputs have arrived and the previous task has finished computing.  Outputs are written after
  compute, overlapping the next tasks; a task is *done* when its writes are complete.
- **Transfers** are ``NPUModel``'s DMA chunks (tiling re-reads included), each cut into
  per-row requests by the memory system; every byte the plan moves is requested exactly once.
- **With PIM** the update tasks do not run on the NPU: each parameter's update becomes a GradPIM
  program, handed to the memory channels as soon as that parameter's gradient is written (all
  its ``bwd_weight`` tasks done), and it runs inside the DRAM while backward continues,
  contending with the NPU's traffic for banks and the command bus.  The iteration ends when
  the NPU's last write and the last PIM command are done.

Phases: ``forward`` (forward tasks and the loss), ``backward`` (data and weight gradients),
``update`` (host update tasks or PIM programs); each reports its first start and last end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from gradpimsim.config import MemoryConfig
from gradpimsim.host.allocator import Allocator
from gradpimsim.host.npu import NPUModel, TaskCost, Transfer
from gradpimsim.host.training import TrainingSchedule
from gradpimsim.system.memory import MemorySystem

PHASE_OF_KIND = {"forward": "forward", "loss": "forward", "backward_data": "backward",
                 "backward_weight": "backward", "update": "update"}
PHASES = ("forward", "backward", "update")


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


class Executor:
    """Builds the task processes of one iteration in a SimPy environment."""

    def __init__(self, env: simpy.Environment, cfg: MemoryConfig, schedule: TrainingSchedule,
                 costs: dict[str, TaskCost], npu: NPUModel, alloc: Allocator,
                 memory: MemorySystem, *, pim_program: Callable[[str], Any] | None = None,
                 on_task_done: TaskHook | None = None,
                 on_host_update: UpdateHook | None = None) -> None:
        self.env = env
        self.cfg = cfg
        self.schedule = schedule
        self.costs = costs
        self.alloc = alloc
        self.memory = memory
        self.pim_program = pim_program
        self.on_task_done = on_task_done
        self.on_host_update = on_host_update
        self.ns_per_cycle = cfg.timing.tCK_ns
        self.records: dict[str, TaskRecord] = {}
        self.done_events: list[simpy.Event] = []
        dag = schedule.dag
        order = schedule.order()
        offload = pim_program is not None
        self.npu_tasks = [t for t in order if not (offload and dag.nodes[t]["kind"] == "update")]
        self.pim_tasks = [t for t in order if offload and dag.nodes[t]["kind"] == "update"]
        self.finished: dict[str, simpy.Event] = {t: env.event() for t in order}
        self.compute_started: dict[str, simpy.Event] = {}
        self.compute_done: dict[str, simpy.Event] = {}
        # writes each task's inputs must wait for: promises registered in program order
        writers: dict[str, list[simpy.Event]] = {}
        self.input_deps: dict[str, dict[str, list[simpy.Event]]] = {}
        for t in self.npu_tasks:
            cost = costs[t]
            self.input_deps[t] = {tr.tensor_name: list(writers.get(tr.tensor_name, ()))
                                  for tr in cost.transfers if not tr.is_write}
            for tr in cost.transfers:
                if tr.is_write:
                    lst = writers.setdefault(tr.tensor_name, [])
                    if not lst or lst[-1] is not self.finished[t]:
                        lst.append(self.finished[t])
            self.compute_started[t] = env.event()
            self.compute_done[t] = env.event()
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

    # ------------------------------------------------------------------ processes
    def _npu_task(self, t: str, prev: str | None) -> Generator[simpy.Event, Any, None]:
        env = self.env
        cost = self.costs[t]
        rec = self.records[t]
        rec.compute_cycles = self._cycles(cost)
        if prev is not None:
            yield self.compute_started[prev]  # the second buffer frees when prev computes
        rec.issue = int(env.now)
        reads = []
        deps = self.input_deps[t]
        for tr in cost.transfers:
            if tr.is_write:
                continue
            waits = [e for e in deps.get(tr.tensor_name, ()) if not e.triggered]
            if waits:
                yield simpy.AllOf(env, waits)
            reads.append(self.memory.transfer(self._ranges(tr), False))
            rec.read_bytes += tr.nbytes
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
            self.on_host_update(t, self.schedule.dag.nodes[t])
        self.compute_done[t].succeed()
        writes = []
        for tr in cost.transfers:
            if tr.is_write:
                writes.append(self.memory.transfer(self._ranges(tr), True))
                rec.write_bytes += tr.nbytes
        if writes:
            yield simpy.AllOf(env, writes)
        self._finish(rec)

    def _pim_task(self, t: str) -> Generator[simpy.Event, Any, None]:
        env = self.env
        rec = self.records[t]
        preds = [self.finished[p] for p in self.schedule.dag.predecessors(t)]
        if preds:
            yield simpy.AllOf(env, preds)
        rec.issue = rec.compute_start = int(env.now)
        assert self.pim_program is not None
        program = self.pim_program(t)
        yield self.memory.run_program(program.units, program.prologue)
        rec.compute_end = int(env.now)
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

"""The schedule verifier and the executor's hazard waits, on every zoo workload.

The DRAM is replaced by a stand-in whose transfers take a time set by the test (so the
ordering logic runs on every workload in seconds, with timings chosen to make hazards bite:
PIM programs that finish at once, writes that take long); the real memory system runs in
``test_iteration.py`` and ``tests/test_overlap.py``.  Each mutation drops one kind of wait from
the executor and the verifier must report the violation it causes.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import simpy

import workloads
from gradpimsim.config import load_config
from gradpimsim.config.training import OptimizerConfig
from gradpimsim.host.allocator import Allocator, place_schedule
from gradpimsim.host.npu import NPUModel
from gradpimsim.host.training import Dataflow, expand_training
from gradpimsim.system import executor as ex
from gradpimsim.system.verify import verify_schedule


class FakeMemory:
    """Transfers complete ``per_kib`` cycles per KiB after submission (writes ``write_x``
    times slower); a PIM program takes ``pim_cycles``."""

    def __init__(self, env: simpy.Environment, per_kib: int = 1, write_x: int = 3,
                 pim_cycles: int = 5) -> None:
        self.env, self.per_kib, self.write_x, self.pim_cycles = env, per_kib, write_x, pim_cycles

    def transfer(self, ranges: list[tuple[int, int]], is_write: bool) -> simpy.Event:
        nbytes = sum(n for _, n in ranges)
        delay = 1 + nbytes // 1024 * self.per_kib * (self.write_x if is_write else 1)
        return self.env.timeout(delay)

    def run_program(self, units: Any, prologue: Any) -> simpy.Event:
        return self.env.timeout(self.pim_cycles)


def planned(name: str, flow: Dataflow) -> tuple[Any, Any, Any, Any]:
    """Schedule, costs, allocator and config of a zoo workload at batch 1 (sequence 8)."""
    seq = 8 if workloads.workload_info(name).is_sequence else None
    g = workloads.get_workload(name, batch=1, seq_len=seq)
    s = expand_training(g, OptimizerConfig("momentum"), "mixed", flow)
    npu = NPUModel("small")
    cfg = load_config("ddr4-2400", channels=8)
    alloc = Allocator(cfg)
    place_schedule(s, alloc)
    return s, npu.schedule_costs(s), alloc, cfg


def execute(plan: tuple[Any, Any, Any, Any], pim: bool, policy: str, **mem: int) -> Any:
    s, costs, alloc, cfg = plan
    env = simpy.Environment()
    e = ex.Executor(env, cfg, s, costs, NPUModel("small"), alloc, FakeMemory(env, **mem),
                    pim_program=(lambda t: SimpleNamespace(units={}, prologue={}))
                    if pim else None, update_policy=policy)
    env.run(until=e.all_done)
    return e


def run_fake(name: str, flow: Dataflow, pim: bool, policy: str, **mem: int) -> tuple[Any, Any]:
    plan = planned(name, flow)
    return plan[0], execute(plan, pim, policy, **mem)


ZOO = [w.name for w in workloads.list_workloads()]
#: (dataflow, PIM run, update policy): every policy of both runs under the default dataflow,
#: each run's default policy with split passes and in the legacy model.
CASES = {Dataflow(resident_bytes=1 << 20): [(False, "after-backward"), (False, "overlap"),
                                            (True, "overlap"), (True, "after-backward")],
         Dataflow(fusion="elementwise", backward="split"): [(False, "after-backward"),
                                                            (True, "overlap")],
         Dataflow.legacy(): [(False, "after-backward"), (True, "overlap")]}


@pytest.mark.parametrize("name", ZOO)
def test_every_workload_schedule_is_hazard_free(name: str) -> None:
    """Writes much slower than reads, and instant ones: either makes a missing wait bite."""
    for flow, runs in CASES.items():
        plan = planned(name, flow)
        for pim, policy in runs:
            for mem in ({"write_x": 0}, {"write_x": 20}):
                e = execute(plan, pim, policy, **mem)
                assert all(r.end >= 0 for r in e.records.values())
                s = plan[0]
                bad = verify_schedule(s.program, s.dag.nodes, e.records.values())
                assert bad == [], (name, flow, pim, policy, mem, bad[:2])


def _drop(monkeypatch: pytest.MonkeyPatch, kind: str, tensor_suffix: str = "") -> None:
    original = ex.Executor._event_of

    def event_of(self: ex.Executor, w: Any) -> Any:
        if w.kind == kind and w.tensor.endswith(tensor_suffix):
            return None
        return original(self, w)

    monkeypatch.setattr(ex.Executor, "_event_of", event_of)


def test_dropping_read_after_write_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PIM update that does not wait for its gradient reads it too early."""
    _drop(monkeypatch, "raw", "/grad")
    s, e = run_fake("resnet18", Dataflow(resident_bytes=1 << 20), True, "overlap")
    bad = verify_schedule(s.program, s.dag.nodes, e.records.values())
    assert any(b.startswith("read after write on") and "/grad" in b for b in bad)


def test_dropping_write_after_read_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weight gradients before data gradients (split passes, then the order flipped for one
    layer) make the update's write of the weight copy race the data gradient's read."""
    _drop(monkeypatch, "war", "/weight_copy")
    flow = Dataflow(backward="split")
    g = workloads.get_workload("mlp", batch=1)
    s = expand_training(g, OptimizerConfig("momentum"), "mixed", flow)
    i, j = s.program.index("bwd_data:fc3"), s.program.index("bwd_weight:fc3")
    s.program[i], s.program[j] = s.program[j], s.program[i]
    from gradpimsim.host.hazards import derive_hazards

    derive_hazards(s)
    npu = NPUModel("small")
    cfg = load_config("ddr4-2400")
    alloc = Allocator(cfg)
    place_schedule(s, alloc)
    env = simpy.Environment()
    # slow reads, instant writes: the data gradient is still reading the weights when the
    # gradient is complete and the update could start
    e = ex.Executor(env, cfg, s, npu.schedule_costs(s), npu, alloc,
                    FakeMemory(env, per_kib=500, write_x=0), update_policy="overlap",
                    pim_program=lambda t: SimpleNamespace(units={}, prologue={}))
    env.run(until=e.all_done)
    bad = verify_schedule(s.program, s.dag.nodes, e.records.values())
    assert any(b.startswith("write after read on fc3.weight/weight_copy") for b in bad), bad
    monkeypatch.undo()
    env = simpy.Environment()
    e = ex.Executor(env, cfg, s, npu.schedule_costs(s), npu, alloc,
                    FakeMemory(env, per_kib=500, write_x=0), update_policy="overlap",
                    pim_program=lambda t: SimpleNamespace(units={}, prologue={}))
    env.run(until=e.all_done)
    assert verify_schedule(s.program, s.dag.nodes, e.records.values()) == []


def test_dropping_read_after_write_between_npu_tasks_is_caught(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With slow writes, a pass whose input read does not wait for the producer's write reads
    stale bytes (the NPU's prefetch of the next pass starts while the previous one writes)."""
    _drop(monkeypatch, "raw", "")
    s, e = run_fake("resnet18", Dataflow(), False, "after-backward", write_x=40)
    bad = verify_schedule(s.program, s.dag.nodes, e.records.values())
    assert any(b.startswith("read after write on act:") for b in bad)


def test_verifier_rules_by_hand() -> None:
    """Two tasks, one tensor: the verifier's three rules and the accumulation exemption."""
    from gradpimsim.host.training import Access
    from gradpimsim.system.executor import AccessTime, TaskRecord

    x = Access("x", 0, 64)
    nodes = {"a": {"reads": [], "writes": [x], "accumulates": []},
             "b": {"reads": [x], "writes": [], "accumulates": []}}

    def recs(a_end: int, b_start: int) -> list[TaskRecord]:
        ra = TaskRecord("a", "forward", None, "npu", end=a_end,
                        accesses=[AccessTime("x", "write", 0, a_end)])
        rb = TaskRecord("b", "forward", None, "npu", end=b_start + 5,
                        accesses=[AccessTime("x", "read", b_start, b_start + 5)])
        return [ra, rb]

    assert verify_schedule(["a", "b"], nodes, recs(10, 10)) == []       # read at the write's end
    assert verify_schedule(["a", "b"], nodes, recs(10, 9))              # one cycle early
    # write after read
    nodes2 = {"a": {"reads": [x], "writes": [], "accumulates": []},
              "b": {"reads": [], "writes": [x], "accumulates": []}}
    ra = TaskRecord("a", "forward", None, "npu", end=10,
                    accesses=[AccessTime("x", "read", 0, 10)])
    rb = TaskRecord("b", "forward", None, "npu", end=20,
                    accesses=[AccessTime("x", "write", 9, 20)])
    assert verify_schedule(["a", "b"], nodes2, [ra, rb])
    rb.accesses[0].start = 10
    assert verify_schedule(["a", "b"], nodes2, [ra, rb]) == []
    # two accumulations commute; a plain write after an accumulation does not
    nodes3 = {"a": {"reads": [], "writes": [x], "accumulates": ["x"]},
              "b": {"reads": [], "writes": [x], "accumulates": ["x"]}}
    ra = TaskRecord("a", "backward", None, "npu", end=10,
                    accesses=[AccessTime("x", "write", 0, 10)])
    rb = TaskRecord("b", "backward", None, "npu", end=12,
                    accesses=[AccessTime("x", "write", 5, 12)])
    assert verify_schedule(["a", "b"], nodes3, [ra, rb]) == []
    nodes3["b"]["accumulates"] = []
    assert verify_schedule(["a", "b"], nodes3, [ra, rb])

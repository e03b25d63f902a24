"""The bounded arbitration policies, ``fair`` and ``throttled`` (``arbiter/rules.py``).

Every expected cycle below is derived from the policy's stated rule and the DDR4 timing
numbers (tRTP, tRAS, the PIM write recovery BL/2 + tWR of ``docs/gradpim.md``), never read back
from the scheduler; the suite's online checker judges every merged stream besides.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gradpimsim.arbiter.rules import FairShare
from gradpimsim.arbiter.shared_channel import SharedChannel
from gradpimsim.bench.arbitration import run_case
from gradpimsim.config import load_config
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.controller.request import Request
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.host.allocator import Allocator
from gradpimsim.pim.kernels import UpdateTarget, build_program
from gradpimsim.pim.layout import ColocatedPolicy, update_tensors
from gradpimsim.system.config import RunConfig
from gradpimsim.system.simulate import simulate

HOST_ROW = 5000  # a row of bank 0 that the update does not use


@dataclass
class Event:
    clk: int
    pim: bool
    cmd: Cmd
    row: int


def one_bank_contest(policy: str, wait_bound: int, host_reads: int = 200
                     ) -> tuple[list[Event], SharedChannel, list[Request]]:
    """One rank, no refresh; a small momentum update (one row in each bank of every bank
    group) and, admitted at cycle 0, ``host_reads`` reads of 8 bursts to bank 0, row
    ``HOST_ROW``, so the host always has a request queued for the bank the unit of bank group
    0 needs.  Returns bank 0's commands, tagged by source."""
    cfg = load_config("ddr4-2400", ranks=1, refresh=False)
    pc = PimConfig()
    stream: list[Command] = []
    from_pim: set[int] = set()
    shared = SharedChannel.build(cfg, pc, policy=policy, sink=stream.append,
                                 wait_bound=wait_bound)
    inner = shared.pim.sink
    assert inner is not None

    def tag(cmd: Command) -> None:
        from_pim.add(len(stream))
        inner(cmd)

    shared.pim.sink = tag
    alloc = Allocator(cfg, ColocatedPolicy())
    opt, prec = OptimizerConfig("momentum"), precision("mixed")
    placed = alloc.place_group("p", update_tensors(2048, opt, prec))
    program = build_program([UpdateTarget("p", 2048, placed)], opt, prec, cfg, pc,
                            amap=alloc.amap)
    assert HOST_ROW not in {i.row for p in program.units.values() for i in p if i.bank >= 0}
    shared.add_program({(r, bg): p for (c, r, bg), p in program.units.items()},
                       {r: s for (c, r), s in program.prologue.items()})
    dev = shared.ctrl.dev
    reqs = [Request(k * 64, False, 0, dev.flat_bank(0, 0, 0), HOST_ROW, (k * 8) % 128, 0,
                    ncols=8) for k in range(host_reads)]
    for r in reqs:
        shared.submit(r)
    shared.drain()
    assert all(r.done > 0 for r in reqs)
    events = [Event(c.clk, k in from_pim, c.cmd, c.row) for k, c in enumerate(stream)
              if c.rank == 0 and c.bankgroup == 0 and c.bank == 0
              and c.cmd in (Cmd.ACT, Cmd.PRE, Cmd.RD, Cmd.PIM_RD, Cmd.PIM_WR)]
    return events, shared, reqs


@pytest.mark.parametrize("n", [100, 151, 300, 301])
def test_fair_hands_a_contested_bank_over_at_the_wait_bound(n: int) -> None:
    """Walk bank 0's commands.  The unit needs bank 0 from cycle 0 (its program starts then);
    the host holds it with reads always queued.  The rules, with ``need`` the cycle from which
    the unit has needed the bank and ``w`` the cycle from which the host has waited for it:

    - the host issues nothing to the bank from ``need + N`` on, and the unit's PRE of the
      host's row comes at max(need + N, last host RD + tRTP, host ACT + tRAS), not a cycle
      later;
    - after the unit's ACT at ``a`` (w = a: the host's requests were admitted at 0), the unit
      issues no column from ``a + N`` on, and its PRE comes at max(a + N, its last column's
      recovery, a + tRAS) -- unless its work on the row ended before; then the unit needs the
      bank again from ``a + N``.
    """
    t = load_config("ddr4-2400").timing
    pim_rtp, pim_wr = t.tRTP, 4 + t.tWR  # PIM_RD -> PRE and PIM_WR -> PRE (BL/2 + tWR)
    events, shared, _ = one_bank_contest("fair", n)
    need = 0
    host_act = last_host_rd = -1
    pim_act = last_pim_col = -1
    pim_col_rec = 0
    claims = yields = 0
    for e in events:
        if not e.pim:
            if e.cmd == Cmd.ACT:
                host_act = e.clk
            elif e.cmd == Cmd.RD:
                if shared.pim.end < 0 or e.clk < shared.pim.end:
                    assert e.clk < need + n or pim_act >= 0, "host read past the claim"
                last_host_rd = e.clk
            continue
        if e.cmd == Cmd.PRE and e.row == HOST_ROW:  # a claim
            assert e.clk == max(need + n, last_host_rd + t.tRTP, host_act + t.tRAS), (e, need)
            claims += 1
            pim_act = -1
        elif e.cmd == Cmd.ACT:
            pim_act = e.clk
            host_act = last_host_rd = -1
        elif e.cmd in (Cmd.PIM_RD, Cmd.PIM_WR):
            assert e.clk < pim_act + n, f"PIM column at {e.clk} past the yield {pim_act + n}"
            last_pim_col = e.clk
            pim_col_rec = pim_rtp if e.cmd == Cmd.PIM_RD else pim_wr
        elif e.cmd == Cmd.PRE:  # the unit closes its own row
            due = max(pim_act + n, last_pim_col + pim_col_rec, pim_act + t.tRAS)
            if e.clk != due:  # only when its work on the row was done before the bound
                assert e.clk < pim_act + n, (e, due)
            else:
                yields += 1
            need = pim_act + n
            pim_act = -1
    assert claims >= 2 and yields >= 2  # the bank changed hands both ways, repeatedly


def test_host_first_keeps_the_bank_for_the_host_until_its_queue_empties() -> None:
    """The same contest under host-first: the unit gets bank 0 only after the host's last
    read (what the bound of ``fair`` changes)."""
    events, _, reqs = one_bank_contest("host-first", 300)
    last_read = max(e.clk for e in events if not e.pim and e.cmd == Cmd.RD)
    first_claim = min(e.clk for e in events if e.pim and e.cmd == Cmd.PRE)
    assert first_claim == last_read + load_config("ddr4-2400").timing.tRTP


def test_fair_lets_pim_finish_inside_a_host_stream_on_its_rank() -> None:
    """A host stream on PIM's rank that always has a request queued: host-first leaves PIM
    waiting until the stream ends, fair (bound 1000) lets it finish well before."""
    cfg = load_config("ddr4-2400", ranks=2)
    kw = {"params": 8192, "reads": 1200, "ncols": 16, "cfg": cfg}
    hf = run_case("same-rank", "host-first", **kw)
    fair = run_case("same-rank", "fair", wait_bound=1000, **kw)
    alone = run_case("none", "host-first", **kw)
    assert hf.pim_end > hf.host_end
    assert fair.pim_end < fair.host_end // 2
    assert alone.pim_end < fair.pim_end


@pytest.mark.parametrize("host", ["other-rank", "same-rank"])
def test_throttled_leaves_the_host_schedule_exactly_as_without_pim(host: str) -> None:
    """Host requests admitted while PIM is idle on their rank complete at exactly the cycles
    they would without PIM, and every REF falls where it would without PIM (PIM closes its
    banks in time); PIM still finishes.  Host-first on the same
    rank does change them (the property is not trivial)."""
    cfg = load_config("ddr4-2400", ranks=2)
    # PIM alone takes about 2 tREFI: its work meets refreshes
    kw = {"params": 32768, "reads": 1200, "ncols": 16, "cfg": cfg}
    refs: dict[bool, list[tuple[int, int]]] = {False: [], True: []}

    def sink(pim: bool):  # type: ignore[no-untyped-def]
        return lambda c: refs[pim].append((c.clk, c.rank)) if c.cmd == Cmd.REF else None

    without = run_case(host, "throttled", pim=False, sink=sink(False), **kw)
    throttled = run_case(host, "throttled", sink=sink(True), **kw)
    assert throttled.host_dones == without.host_dones
    # REFs unmoved while the host runs (PIM may go on alone after it)
    assert [r for r in refs[True] if r[0] <= without.host_end] == refs[False]
    assert len(refs[False]) >= 2 * 2
    assert throttled.pim_end > 2 * cfg.timing.tREFI
    if host == "same-rank":
        assert run_case(host, "host-first", **kw).host_dones != without.host_dones


def test_a_pim_command_wins_the_bus_after_waiting_its_bound() -> None:
    """``fair``'s bus rule at its boundary: ready for N - 1 cycles, the host wins the tie;
    for N, PIM does."""
    cfg = load_config("ddr4-2400")
    shared = SharedChannel.build(cfg, PimConfig(), policy="fair", wait_bound=50)
    fair = shared.fair
    assert isinstance(fair, FairShare)
    pim = shared.pim
    pim._sel = 0
    pim.ready = [1000]  # one agent, its command legal from cycle 1000
    assert not fair.tie_to_pim(1049) and shared._bump(1049) == 1
    assert fair.tie_to_pim(1050) and shared._bump(1050) == 0
    pim._sel = -1  # nothing proposed: nothing to win
    assert not fair.tie_to_pim(10**6)


def test_wait_bound_is_validated() -> None:
    with pytest.raises(ValueError, match="wait_bound"):
        FairShare.__init__(object.__new__(FairShare), None, None, 0)  # type: ignore[arg-type]
    from gradpimsim.config.model import ConfigError
    with pytest.raises(ConfigError) as err:
        RunConfig(workload="mlp", pim_wait_bound=0)
    assert err.value.field == "pim_wait_bound"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    from gradpimsim.graph.io import save_graph
    from workloads.mlp import mlp
    path = tmp_path_factory.mktemp("wl") / "tiny.json"
    save_graph(mlp(batch=8, in_features=96, hidden=(160,), classes=24), path)
    return str(path)


@pytest.mark.parametrize("update_policy", ["overlap", "after-backward"])
@pytest.mark.parametrize("placement", ["shared", "bank-partition", "rank-partition"])
@pytest.mark.parametrize("policy", ["host-first", "pim-first", "fair", "throttled"])
def test_every_policy_keeps_the_update_bit_exact(policy: str, placement: str,
                                                 update_policy: str, tiny: str) -> None:
    """A whole iteration with GradPIM (functional, causal gradients: the backward tasks write
    them) under every arbitration x placement x update policy, two ranks: the weights equal
    the reference optimizer's, the hazard verifier finds nothing, and the online checker sees
    every command."""
    run = RunConfig(workload=tiny, functional=True, pim=True, pim_policy=policy,
                    placement=placement, update_policy=update_policy, pim_wait_bound=200,
                    ranks=2)
    res = simulate(run)
    assert res.verified is True
    assert not res.schedule_violations
    assert res.memory["placement"] == placement

"""A mutation check you can rerun: does the test suite catch small, deliberate bugs?

Each mutation (:data:`MUTATIONS`) is data: an id, the area it belongs to, a file, the exact text
to replace (it must occur exactly once, so the list fails loudly when the code moves), its
replacement, the focused tests that should catch it and what it breaks.  For each mutation the
script copies the tree (``gradpimsim/``, ``tests/``, ``workloads/``, ``notebooks/`` and the
packaging files) to a scratch directory, applies that one bug there, runs the named tests with
``python -m pytest -x -q -p no:cacheprovider`` (``PYTHONPATH`` at the copy, so the copy is what
is imported) and reports KILLED (the tests failed) or SURVIVED (they passed), with the time
taken.  The real tree is never edited.  One pytest process at a time.

    python benchmarks/mutants.py             # every mutation
    python benchmarks/mutants.py --list      # the list, nothing run
    python benchmarks/mutants.py --only C1 S2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("gradpimsim", "tests", "workloads", "notebooks", "pyproject.toml", "setup.cfg",
          "setup.py")


@dataclass(frozen=True)
class Mutation:
    id: str
    area: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    breaks: str


#: Focused lists, fastest first (``-x`` stops at the first failure); the slow end-to-end files
#: (test_iteration.py, about 3 minutes) are left out where a faster file pins the same thing.
CONTROLLER_TESTS = ("tests/test_policy_pins.py", "tests/test_controller.py")
SYSTEM_TESTS = ("tests/test_host_training.py", "tests/test_schedule_verifier.py")
STATS_TESTS = ("tests/test_stats_pins.py", "tests/test_energy.py", "tests/test_trace_cli.py")
SYSTEM_STATS_TESTS = ("tests/test_system_stats_pins.py", "tests/test_figures.py")
PRESET_TESTS = ("tests/test_preset_pins.py", "tests/test_config.py", "tests/test_dram_timing.py")

MUTATIONS: tuple[Mutation, ...] = (
    # -- controller scheduling policy ------------------------------------------------------
    Mutation("C1", "controller", "gradpimsim/controller/candidates.py",
             "            if self.bypass[b] < self.cap:\n",
             "            if self.bypass[b] < 0:\n",
             CONTROLLER_TESTS,
             "FR-FCFS never prefers a younger row hit over the head's miss (per-bank FCFS)"),
    Mutation("C2", "controller", "gradpimsim/controller/candidates.py",
             "            if self.bypass[b] < self.cap:\n",
             "            if self.bypass[b] <= self.cap:\n",
             CONTROLLER_TESTS,
             "starvation cap off by one: one more younger hit bypasses the head"),
    Mutation("C3", "controller", "gradpimsim/controller/queues.py",
             "(reads > 0 and (not forced or writes <= low))",
             "(reads > 0 and (not forced or writes < low))",
             CONTROLLER_TESTS,
             "a forced write drain stops one write below the low watermark"),
    Mutation("C4", "controller", "gradpimsim/controller/queues.py",
             "(reads > 0 and (not forced or writes <= low))",
             "(reads > 0 and (forced and writes <= low))",
             CONTROLLER_TESTS,
             "an opportunistic drain no longer stops when a read arrives"),
    Mutation("C5", "controller", "gradpimsim/controller/candidates.py",
             "        for q in (self.read_q[b], self.write_q[b]):\n"
             "            for other in q:\n",
             "        for q in (self.read_q[b],):\n"
             "            for other in q:\n",
             CONTROLLER_TESTS,
             "closed page auto-precharges although a queued write hits the row"),
    Mutation("C6", "controller", "gradpimsim/dram/refresh.py",
             "self.force_at = max(1, max_postponed)",
             "self.force_at = max(1, max_postponed + 1)",
             ("tests/test_policy_pins.py", "tests/test_controller.py",
              "tests/test_hardening_refresh.py"),
             "a busy rank may owe one refresh more than the postponement limit"),
    Mutation("C7", "controller", "gradpimsim/controller/candidates.py",
             "self.last_col[b] + self.idle_close",
             "self.last_col[b] + self.idle_close - 1",
             CONTROLLER_TESTS,
             "adaptive page policy closes an idle row one cycle early"),
    Mutation("C8", "controller", "gradpimsim/controller/queues.py",
             'self.fcfs = c.scheduler == "fcfs"',
             "self.fcfs = False",
             CONTROLLER_TESTS,
             "scheduler = fcfs is ignored: FR-FCFS serves younger row hits first"),
    Mutation("C9", "controller", "gradpimsim/controller/queues.py",
             "            if self.reads >= self.read_cap:\n",
             "            if self.reads > self.read_cap:\n",
             CONTROLLER_TESTS,
             "back-pressure: the read queue holds one request more than its depth"),
    # -- causality and the training DAG ----------------------------------------------------
    Mutation("K1", "causality", "gradpimsim/system/executor.py",
             "            waits = [ev for w in self.schedule.waits.get(t, ())\n",
             "            waits = [ev for w in self.schedule.waits.get(t, ())"
             " if w.kind != 'raw'\n",
             ("tests/test_schedule_verifier.py",),
             "a PIM update task does not wait for its gradient writes (RAW)"),
    Mutation("D1", "training DAG", "gradpimsim/host/training.py",
             'rroles = ["grad", "weight", *states, *self.opt.const_roles]',
             'rroles = ["weight", *states, *self.opt.const_roles]',
             SYSTEM_TESTS,
             "the update task does not read the gradient: the backward -> update edge is gone"),
    Mutation("D2", "training DAG", "gradpimsim/host/hazards.py",
             "                    if pmode != READ:\n",
             "                    if pmode == WRITE:\n",
             SYSTEM_TESTS,
             "a read does not wait for earlier accumulations (gradient sums) of its tensor"),
    # -- statistics ------------------------------------------------------------------------
    Mutation("S1", "statistics", "gradpimsim/stats/memory.py",
             "for k in (Cmd.RD, Cmd.RDA, Cmd.WR, Cmd.WRA))",
             "for k in (Cmd.RD, Cmd.RDA, Cmd.WR))",
             STATS_TESTS,
             "row-hit rate ignores WRA (closed-page writes) in its column count"),
    Mutation("S2", "statistics", "gradpimsim/system/results.py",
             "        by_phase[phase] = memory.energy(snap, prev)\n",
             "        by_phase[phase] = memory.energy(snap)\n",
             SYSTEM_STATS_TESTS,
             "energy per phase is cumulative from cycle 0, not the phase's own"),
    Mutation("S3", "statistics", "gradpimsim/stats/memory.py",
             "bandwidth = nbytes / seconds / 1e9 if seconds else 0.0",
             "bandwidth = nbytes / seconds / 2**30 if seconds else 0.0",
             STATS_TESTS,
             "trace bandwidth in GiB/s labelled GB/s"),
    Mutation("S4", "statistics", "gradpimsim/system/results.py",
             "    spacing = pim.resolved(cfg.timing, cfg.burst_cycles).col_to_col\n",
             "    spacing = cfg.burst_cycles\n",
             SYSTEM_STATS_TESTS,
             "PIM utilization counts data-bus cycles (BL/2), not the column slot (tCCD_L)"),
    Mutation("S5", "statistics", "gradpimsim/stats/energy.py",
             'out["average_power_mw"] = out["total"] * 1e-9 / seconds * 1e3',
             'out["average_power_mw"] = out["total"] * 1e-9 / seconds * 1e6',
             STATS_TESTS,
             "average power in microwatts labelled mW"),
    Mutation("S6", "statistics", "gradpimsim/controller/latency.py",
             "rank = max(1, int(np.ceil(p / 100.0 * n)))",
             "rank = max(1, int(p / 100.0 * n))",
             STATS_TESTS,
             "latency percentiles rounded down: p99 of 4 samples is the 3rd, not the 4th"),
    Mutation("S7", "statistics", "gradpimsim/stats/memory.py",
             "* cfg.org.burst_bytes\n",
             "* cfg.org.burst_length\n",
             STATS_TESTS,
             "replayed bytes (and bandwidth) count 8 per burst, not 64"),
    Mutation("S8", "statistics", "gradpimsim/trace/replay.py",
             "            c.horizon = last\n"
             "        if last - 1 > env.now:\n"
             "            yield env.timeout(last - 1 - int(env.now))\n"
             "        if env.now < last:\n",
             "            c.horizon = last + 1\n"
             "        if last > env.now:\n"
             "            yield env.timeout(last - int(env.now))\n"
             "        if True:\n",
             STATS_TESTS,
             "replay admits a request sharing the previous chunk's last cycle a cycle late"),
    # -- arbitration -----------------------------------------------------------------------
    Mutation("A1", "arbitration", "gradpimsim/arbiter/rules.py",
             "out.append((pim.need_since[b] + self.n, b))",
             "out.append((pim.need_since[b] + self.n + 1, b))",
             ("tests/test_arbitration.py",),
             "fair: PIM waits one cycle longer than the wait bound for a host-held bank"),
    Mutation("A2", "arbitration", "gradpimsim/arbiter/rules.py",
             "self.guard = t.tRAS + t.tRP + 2 * cfg.org.banks_per_rank",
             "self.guard = 0",
             ("tests/test_arbitration.py",),
             "throttled: PIM keeps banks open up to the refresh boundary (REFs delayed)"),
    Mutation("A3", "arbitration", "gradpimsim/arbiter/shared_channel.py",
             'self.host_first = policy != "pim-first"',
             "self.host_first = True",
             ("tests/test_policy_pins.py",),
             "pim-first gives command-bus ties to the host"),
    # -- presets ---------------------------------------------------------------------------
    Mutation("P1", "presets", "gradpimsim/config/presets/ddr4-2400.toml",
             "tWTR_L = 9\n", "tWTR_L = 8\n",
             PRESET_TESTS,
             "DDR4-2400 tWTR_L one cycle short (7.5 ns at 0.833 ns is 9 nCK)"),
    Mutation("P2", "presets", "gradpimsim/config/presets/ddr4-3200.toml",
             "tFAW max(16 nCK, 10 ns)\ntRRD_S = 4\ntRRD_L = 8\n",
             "tFAW max(16 nCK, 10 ns)\ntRRD_S = 4\ntRRD_L = 7\n",
             PRESET_TESTS,
             "DDR4-3200 x4 tRRD_L one cycle short"),
    Mutation("P3", "presets", "gradpimsim/config/presets/devices.toml",
             "rows = 131072\n", "rows = 65536\n",
             PRESET_TESTS,
             "x4 dies get the x8 row count (half the capacity)"),
    Mutation("P4", "presets", "gradpimsim/config/presets/ddr4-3200.toml",
             "tXP = 10\n", "tXP = 8\n",
             PRESET_TESTS,
             "DDR4-3200 tXP copied from DDR4-2400"),
    Mutation("P5", "presets", "gradpimsim/config/pim.py",
             '"op": 400.0,', '"op": 133.0,',
             PRESET_TESTS,
             "PIM_OP energy default without the documented x3 (docs/energy.md)"),
    # -- checker ---------------------------------------------------------------------------
    Mutation("X1", "checker", "gradpimsim/checker/rules.py",
             "            rtp=t.AL + t.tRTP,\n",
             "            rtp=t.AL + t.tRTP - 1,\n",
             ("tests/test_checker_rules.py",),
             "checker accepts RD -> PRE one cycle early"),
    Mutation("X2", "checker", "gradpimsim/checker/rules.py",
             "            wtr_s=wl + bl2 + t.tWTR_S,\n",
             "            wtr_s=wl + bl2 + t.tWTR_S - 1,\n",
             ("tests/test_checker_rules.py",),
             "checker accepts WR -> RD (other bank group) one cycle early"),
    # -- PIM read-to-operation latency (pim.read_to_op) -------------------------------------
    Mutation("R1", "pim knobs", "gradpimsim/dram/timing_table.py",
             '    _r("bankgroup", Cmd.PIM_RD, Cmd.PIM_OP, "PIM_READ_OP", "pim_read_op", '
             'pim=True),\n',
             "",
             ("tests/test_pim_read_to_op.py",),
             "the controller ignores read_to_op (its timing-table row dropped)"),
    Mutation("R2", "pim knobs", "gradpimsim/checker/rules.py",
             "            pim_read_op=p.read_to_op,\n",
             "            pim_read_op=max(p.read_to_op - 1, 0),\n",
             ("tests/test_checker_rules.py",),
             "checker accepts a PIM_OP one cycle short of read_to_op after its unit's PIM_RD"),
    Mutation("R3", "pim knobs", "gradpimsim/pim/channel.py",
             "                    v = bg_next[(fb2 // bpg) * NCMD + c2]\n",
             "                    v = bg_next[(fb2 // bpg) * NCMD + c2] if c2 != PIM_OP else 0\n",
             ("tests/test_pim_read_to_op.py",),
             "run()'s inlined loop proposes a PIM_OP without its bank group's rules"),
    # -- plots, timeline -------------------------------------------------------------------
    # -- the run loop's lean path for single-burst hits, latency counts, trace parsing -------
    Mutation("H1", "hit chain", "gradpimsim/controller/merge_run.py",
             "            if best_t >= limit:\n"
             "                return t, limit, issued, last_rank, True\n",
             "            if best_t > limit:\n"
             "                return t, limit, issued, last_rank, True\n",
             ("tests/test_hit_chain.py",),
             "a hit issued at the run's limit (a refresh deadline, a requester's horizon)"),
    Mutation("H2", "hit chain", "gradpimsim/controller/merge_run.py",
             "            if best_k < 0 or f_at < best_t:\n",
             "            if best_k < 0:\n",
             ("tests/test_hit_chain.py",),
             "hits issued past a row command that falls due first (an ACT of a new row)"),
    Mutation("H3", "hit chain", "gradpimsim/controller/merge_run.py",
             "                if e < best_t or (e == best_t and head.seq < best_seq):\n"
             "                    best_t, best_seq, best_k = e, head.seq, s\n"
             "            if best_k < 0 or f_at < best_t:\n",
             "                if e <= best_t:\n"
             "                    best_t, best_seq, best_k = e, head.seq, s\n"
             "            if best_k < 0 or f_at < best_t:\n",
             ("tests/test_hit_chain.py",),
             "ties between ready hits not broken by age"),
    Mutation("L1", "latency", "gradpimsim/controller/latency.py",
             "        out.extend(sorted(self._sparse.items()))\n",
             "",
             ("tests/test_latency.py",),
             "latencies of 2^16 cycles or more dropped from the statistics"),
    Mutation("F1", "trace parsing", "gradpimsim/trace/requests.py",
             "\n            and (starts[3::3] > nl_pos[:-1]).all()):",
             "):",
             ("tests/test_request_trace.py",),
             "a line of four fields and one of two taken for two of three"),
    Mutation("B1", "replay", "gradpimsim/trace/replay.py",
             "        for c in ctrls:\n            c.horizon = last\n",
             "",
             ("tests/test_replay_cuts.py",),
             "closed-form runs decide past arrivals the source has not read yet"),
    Mutation("B2", "replay", "gradpimsim/trace/replay.py",
             "                ahead = len(c.pending) - c.read_cap - c.write_cap - 1\n",
             "                ahead = 8 * len(c.pending)\n",
             ("tests/test_replay_cuts.py",),
             "a controller runs ahead under back-pressure until it runs out of requests"),
    Mutation("G1", "plots", "gradpimsim/stats/plots.py",
             "                ys.append(float(vals.mean()))\n",
             '                ys.append(float(sub["speedup"].mean()))\n',
             ("tests/test_plots.py",),
             "sweep speedup bars show the series' mean for every workload"),
    Mutation("G2", "plots", "gradpimsim/stats/plots.py",
             '        sub = sub.sort_values("params")\n',
             "",
             ("tests/test_plots.py",),
             "update-bench line drawn in table order, not by parameter count"),
    Mutation("T1", "timeline", "gradpimsim/system/timeline.py",
             "dma_out.append((t.task, t.phase, t.compute_end, t.end,",
             "dma_out.append((t.task, t.phase, t.compute_start, t.end,",
             ("tests/test_timeline.py",),
             "timeline's DMA-out spans start at compute start, not compute end"),
    # -- tests that could not fail ---------------------------------------------------------
    Mutation("Q1", "tautology", "gradpimsim/sweep/spec.py",
             'blob = json.dumps({"kind": kind, "params": dict(params),',
             'blob = json.dumps({"params": dict(params),',
             ("tests/test_sweep.py",),
             "sweep point keys ignore the kind (test once asserted int(key, 16) >= 0)"),
)


def apply(tree: Path, m: Mutation) -> None:
    """Apply ``m`` to the copy at ``tree``; raise if its old text is not there exactly once."""
    path = tree / m.file
    text = path.read_text()
    n = text.count(m.old)
    if n != 1:
        raise SystemExit(f"mutation {m.id}: old text found {n} times in {m.file} (expected "
                         f"exactly once): update the mutation list")
    path.write_text(text.replace(m.old, m.new))


def check_list() -> None:
    """Every mutation's old text occurs exactly once in the real tree (read only)."""
    ids = [m.id for m in MUTATIONS]
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate mutation ids")
    for m in MUTATIONS:
        n = (ROOT / m.file).read_text().count(m.old)
        if n != 1:
            raise SystemExit(f"mutation {m.id}: old text found {n} times in {m.file} (expected "
                             f"exactly once): update the mutation list")


def run_one(m: Mutation, keep_log: Path | None) -> tuple[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"mutant-{m.id}-") as tmp:
        tree = Path(tmp)
        for name in COPIED:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, tree / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.so", "build"))
            elif src.exists():
                shutil.copy2(src, tree / name)
        apply(tree, m)
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        took = time.perf_counter() - start
        if keep_log is not None:
            keep_log.mkdir(parents=True, exist_ok=True)
            (keep_log / f"{m.id}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode == 0:
        return "SURVIVED", took
    if proc.returncode == 1:
        return "KILLED", took
    return f"ERROR({proc.returncode})", took  # collection error, usage error: not evidence


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="ID", help="run only these mutations")
    ap.add_argument("--list", action="store_true", help="list the mutations, run nothing")
    ap.add_argument("--logs", type=Path, help="keep each mutation's pytest output here")
    args = ap.parse_args(argv)
    check_list()
    chosen = list(MUTATIONS)
    if args.only:
        known = {m.id: m for m in MUTATIONS}
        unknown = [i for i in args.only if i not in known]
        if unknown:
            print(f"unknown mutation id(s): {', '.join(unknown)}; known: {', '.join(known)}",
                  file=sys.stderr)
            return 2
        chosen = [known[i] for i in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.id:4} {m.area:13} {m.file}: {m.breaks}")
            print(f"     tests: {' '.join(m.tests)}")
        return 0
    print(f"{'id':4} {'area':13} {'result':9} {'seconds':>8}  breaks")
    survived = 0
    for m in chosen:
        result, took = run_one(m, args.logs)
        survived += result != "KILLED"
        print(f"{m.id:4} {m.area:13} {result:9} {took:8.1f}  {m.breaks}", flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())

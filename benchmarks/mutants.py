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


CONTROLLER_TESTS = ("tests/test_controller.py", "tests/test_controller_bulk.py")
SYSTEM_TESTS = ("tests/test_iteration.py", "tests/test_schedule_verifier.py")

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
             ("tests/test_controller.py", "tests/test_hardening_refresh.py"),
             "a busy rank may owe one refresh more than the postponement limit"),
    Mutation("C7", "controller", "gradpimsim/controller/candidates.py",
             "self.last_col[b] + self.idle_close",
             "self.last_col[b] + self.idle_close - 1",
             CONTROLLER_TESTS,
             "adaptive page policy closes an idle row one cycle early"),
    # -- causality and the training DAG ----------------------------------------------------
    Mutation("K1", "causality", "gradpimsim/system/executor.py",
             "            waits = [ev for w in self.schedule.waits.get(t, ())\n",
             "            waits = [ev for w in self.schedule.waits.get(t, ())"
             " if w.kind != 'raw'\n",
             SYSTEM_TESTS,
             "a PIM update task does not wait for its gradient writes (RAW)"),
    Mutation("D1", "training DAG", "gradpimsim/host/training.py",
             'rroles = ["grad", "weight", *states]',
             'rroles = ["weight", *states]',
             ("tests/test_host_training.py", "tests/test_schedule_verifier.py"),
             "the update task does not read the gradient: the backward -> update edge is gone"),
    Mutation("D2", "training DAG", "gradpimsim/host/hazards.py",
             "                    if pmode != READ:\n",
             "                    if pmode == WRITE:\n",
             ("tests/test_host_training.py", "tests/test_schedule_verifier.py"),
             "a read does not wait for earlier accumulations (gradient sums) of its tensor"),
    # -- statistics ------------------------------------------------------------------------
    Mutation("S1", "statistics", "gradpimsim/stats/memory.py",
             "for k in (Cmd.RD, Cmd.RDA, Cmd.WR, Cmd.WRA))",
             "for k in (Cmd.RD, Cmd.RDA, Cmd.WR))",
             ("tests/test_trace_cli.py", "tests/test_plots.py", "tests/test_energy.py"),
             "row-hit rate ignores WRA (closed-page writes) in its column count"),
    Mutation("S2", "statistics", "gradpimsim/system/results.py",
             "        by_phase[phase] = memory.energy(snap, prev)\n",
             "        by_phase[phase] = memory.energy(snap)\n",
             ("tests/test_iteration.py", "tests/test_plots.py", "tests/test_traffic.py"),
             "energy per phase is cumulative from cycle 0, not the phase's own"),
    Mutation("S3", "statistics", "gradpimsim/stats/memory.py",
             "bandwidth = nbytes / seconds / 1e9 if seconds else 0.0",
             "bandwidth = nbytes / seconds / 2**30 if seconds else 0.0",
             ("tests/test_trace_cli.py", "tests/test_config.py", "tests/test_plots.py"),
             "trace bandwidth in GiB/s labelled GB/s"),
    Mutation("S4", "statistics", "gradpimsim/system/results.py",
             "    spacing = pim.resolved(cfg.timing, cfg.burst_cycles).col_to_col\n",
             "    spacing = cfg.burst_cycles\n",
             ("tests/test_iteration.py", "tests/test_plots.py"),
             "PIM utilization counts data-bus cycles (BL/2), not the column slot (tCCD_L)"),
    Mutation("S5", "statistics", "gradpimsim/stats/energy.py",
             'out["average_power_mw"] = out["total"] * 1e-9 / seconds * 1e3',
             'out["average_power_mw"] = out["total"] * 1e-9 / seconds * 1e6',
             ("tests/test_energy.py", "tests/test_trace_cli.py"),
             "average power in microwatts labelled mW"),
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
    # -- presets ---------------------------------------------------------------------------
    Mutation("P1", "presets", "gradpimsim/config/presets/ddr4-2400.toml",
             "tWTR_L = 9\n", "tWTR_L = 8\n",
             ("tests/test_config.py", "tests/test_dram_timing.py"),
             "DDR4-2400 tWTR_L one cycle short (7.5 ns at 0.833 ns is 9 nCK)"),
    Mutation("P2", "presets", "gradpimsim/config/presets/ddr4-3200.toml",
             "tFAW max(16 nCK, 10 ns)\ntRRD_S = 4\ntRRD_L = 8\n",
             "tFAW max(16 nCK, 10 ns)\ntRRD_S = 4\ntRRD_L = 7\n",
             ("tests/test_config.py", "tests/test_dram_timing.py"),
             "DDR4-3200 x4 tRRD_L one cycle short"),
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

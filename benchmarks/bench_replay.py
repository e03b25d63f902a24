"""Trace-replay throughput and memory, and two builds side by side (run by hand).

    python benchmarks/bench_replay.py [--n 1000000] [--repeat 3] [--config ddr4-2400]
    python benchmarks/bench_replay.py --side-by-side A B [--n ...] [--traces random,seq]

Generates (seeded, via gen_traces.py) a sequential read trace, a random 80% read / 20% write
trace and a mixed one (four sequential streams with random requests cutting across them) of
``n`` requests each, and replays each through the full path a user runs (streamed parsing,
address decoding, controllers, statistics; no command sink) in a fresh process per run.  Prints
requests simulated per wall-second of the replay (median of ``--repeat`` runs), the replay's
wall seconds, the process's peak memory (maximum resident set size, interpreter and numpy
included) and the simulated completion cycle.

``--side-by-side A B`` runs two builds alternately, A then B, ``--repeat`` pairs per trace (so
both see the same machine load), and prints their medians, the ratio A/B of the median wall
times (above 1: B is faster) and whether both simulated the same cycles.  A build is a Python
interpreter with gradpimsim installed (``/path/to/venv/bin/python``: e.g. a compiled install of
another commit) or a source tree (a directory holding ``gradpimsim/``, run pure Python with this
interpreter).  The machine's load average is printed before and after: on a shared machine read
the ratio, not the absolute figures.

Targets (issue 23, the compiled build against main's 5e546af on ``DDR4_8Gb_x8_2400.ini``):
random 80/20 at least 2.7x faster, sequential at least 1.7x faster, peak under 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_traces import generate  # noqa: E402

#: The replay a child process runs: one trace, one configuration; prints one JSON line.
CHILD = """
import json, resource, sys, time
from gradpimsim.config import load_config
from gradpimsim.trace.replay import replay_trace
cfg = load_config(sys.argv[1])
t0 = time.perf_counter()
stats = replay_trace(sys.argv[2], cfg).stats
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "requests": stats["requests"],
                  "cycles": stats["completion_cycle"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

KINDS = {"seq": "seq_read", "random": "random_rw80", "mixed": "mixed"}


def command(build: str) -> tuple[list[str], dict[str, str]]:
    """How to run a build: its interpreter, or this one on a source tree."""
    path = Path(build)
    env = dict(os.environ)
    if path.is_dir():
        if not (path / "gradpimsim").is_dir():
            raise SystemExit(f"{build}: not a source tree (no gradpimsim/ inside)")
        env["PYTHONPATH"] = str(path.resolve())
        return [sys.executable], env
    if not path.is_file():
        raise SystemExit(f"{build}: neither a Python interpreter nor a source tree")
    env.pop("PYTHONPATH", None)
    return [str(path)], env


def run_once(build: str, config: str, trace: Path) -> dict[str, float]:
    cmd, env = command(build)
    out = subprocess.run([*cmd, "-c", CHILD, config, str(trace)], env=env,
                         cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{build} on {trace.name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def summary(runs: list[dict[str, float]]) -> tuple[float, float, float, int]:
    """Median wall seconds, requests/s at that median, peak RSS (MiB), simulated cycles."""
    wall = statistics.median(r["wall"] for r in runs)
    return (wall, runs[0]["requests"] / wall, max(r["rss_mb"] for r in runs),
            int(runs[0]["cycles"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="requests per trace")
    ap.add_argument("--repeat", type=int, default=3, help="runs (pairs side by side) per trace")
    ap.add_argument("--config", default="ddr4-2400", help="preset name or DRAMsim3 .ini")
    ap.add_argument("--traces", default="seq,random,mixed",
                    help=f"comma-separated, from {', '.join(KINDS)}")
    ap.add_argument("--side-by-side", nargs=2, metavar=("A", "B"),
                    help="two builds (interpreters or source trees) run alternately")
    ap.add_argument("--traces-dir", type=Path,
                    help="reuse (or create) the generated traces here instead of a temp dir")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.traces.split(",") if k.strip()]
    for k in kinds:
        if k not in KINDS:
            ap.error(f"--traces: unknown trace {k!r}; choose from {', '.join(KINDS)}")
    builds = args.side_by_side or [sys.executable]
    with tempfile.TemporaryDirectory() as tmp:
        where = args.traces_dir or Path(tmp)
        names = {KINDS[k]: k for k in kinds}
        wanted = [where / f"{KINDS[k]}_{args.n}.trace" for k in kinds]
        if not all(p.exists() for p in wanted):
            generate(where, args.n, seed=1, gap=1)
        print(f"{args.n:,} requests per trace, config {args.config}; {load()}")
        for path in wanted:
            kind = names[path.name.rsplit("_", 1)[0]]
            runs: list[list[dict[str, float]]] = [[] for _ in builds]
            for _ in range(args.repeat):
                for i, build in enumerate(builds):
                    runs[i].append(run_once(build, args.config, path))
            rows = [summary(r) for r in runs]
            for build, r, (wall, rate, rss, cycles) in zip(builds, runs, rows, strict=True):
                walls = ", ".join(f"{x['wall']:.2f}" for x in r)
                print(f"{kind:>6}  {build}: {rate:,.0f} requests/s, {wall:.2f} s (median of "
                      f"{args.repeat}: {walls}), peak RSS {rss:.0f} MiB, {cycles:,} cycles")
            if len(rows) == 2:
                same = "same" if rows[0][3] == rows[1][3] else "DIFFERENT"
                print(f"{kind:>6}  ratio A/B {rows[0][0] / rows[1][0]:.2f}x "
                      f"({'B faster' if rows[1][0] < rows[0][0] else 'A faster'}), "
                      f"{same} simulated cycles")
        print(f"done; {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

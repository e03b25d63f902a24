"""Build hook: compile the scheduler's hot modules with mypyc (the default).

``pip install .`` compiles the event loop (controller, device state, request, refresh, latency
histogram) to C with mypyc (a build requirement in ``pyproject.toml``), about twice as fast; the
source is the same Python, so results are identical.  It stays pure Python when

* ``GRADPIMSIM_PURE=1`` is set (or the older ``GRADPIMSIM_COMPILE=0``),
* the install is editable (``pip install -e .``): a compiled module would shadow source edits,
* mypyc or the C compiler fails: one line says so and the install goes on, pure Python.

On POSIX the C is built *profile-guided* (as CPython itself is): a first build is
instrumented, a short training run simulates a small iteration with and without PIM
(``PGO_TRAINING``), and the final build uses the branch counts it recorded and ``TUNING``.
Both change only how the C compiler lays out and inlines the same code, never what it computes.
``GRADPIMSIM_PGO=0`` skips the profile (one build, with ``TUNING``); if the compiler cannot
profile or the training run fails, one line says so and the build goes on without the profile.

``gradpimsim --version`` says which build is installed.
"""

import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HOT_MODULES = [
    "gradpimsim/arbiter/shared_channel.py",
    "gradpimsim/controller/bulk.py",
    "gradpimsim/controller/candidates.py",
    "gradpimsim/controller/controller.py",
    "gradpimsim/controller/latency.py",
    "gradpimsim/controller/merge_run.py",
    "gradpimsim/controller/mux.py",
    "gradpimsim/controller/periodic.py",
    "gradpimsim/controller/queues.py",
    "gradpimsim/controller/request.py",
    "gradpimsim/controller/runs.py",
    "gradpimsim/dram/address_map.py",
    "gradpimsim/dram/codes.py",
    "gradpimsim/dram/device.py",
    "gradpimsim/dram/refresh.py",
    "gradpimsim/pim/agents.py",
    "gradpimsim/pim/batches.py",
    "gradpimsim/pim/channel.py",
    "gradpimsim/pim/kernels.py",
    "gradpimsim/pim/phases.py",
    "gradpimsim/pim/program.py",
    "gradpimsim/pim/proposals.py",
    "gradpimsim/pim/recipes.py",
]

#: The profile-guided build's training run: both runs of a small iteration, so the profile
#: covers the host controller's closed-form runs, the PIM scheduler and their arbitration; then
#: request-trace replays (sequential, uniform random 80/20, the two interleaved), so it covers
#: the DDR4 core's per-command path and trace admission too (without them the compiler lays
#: those out as cold code).
PGO_TRAINING = """
import os, random, tempfile
from gradpimsim.config import preset
from gradpimsim.system.config import RunConfig
from gradpimsim.system.simulate import simulate
from gradpimsim.trace import replay
for pim in (False, True):
    simulate(RunConfig(workload="resnet18", batch=2, pim=pim, precision="mixed",
                       optimizer="momentum", memory="ddr4-2400"))
cfg = preset("ddr4-2400-x8-2r")
rng = random.Random(1)
n, bursts = 50000, cfg.org.channel_bytes // 64
seq = [(i * 64, False) for i in range(n)]
rnd = [(rng.randrange(bursts) * 64, rng.random() < 0.2) for _ in range(n)]
mix = [s if rng.random() < 0.5 else r for s, r in zip(seq, rnd)]
with tempfile.TemporaryDirectory() as tmp:
    for name, reqs in (("seq", seq), ("random", rnd), ("mixed", mix)):
        path = os.path.join(tmp, name + ".trace")
        with open(path, "w") as f:
            for i, (a, w) in enumerate(reqs):
                f.write(f"{a:#x} {'WRITE' if w else 'READ'} {i}\\n")
        replay.replay_trace(path, cfg)
"""

#: Compiler options of the tuned build (GCC and Clang): the compiled modules live in one shared
#: library, and without this every call between its functions may not be inlined, as if another
#: library could replace them (CPython builds itself with it for the same reason).
TUNING = ["-fno-semantic-interposition"]

#: setup.py commands that never build extensions: metadata, sdists and editable installs.
NO_BUILD_COMMANDS = {"egg_info", "dist_info", "sdist", "editable_wheel", "develop"}


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most 160 characters, for pip's build log."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    return reason if len(reason) <= 160 else reason[:157] + "..."


def say_pure(exc: BaseException) -> None:
    if isinstance(exc, SystemExit):  # mypy found type errors: they are printed above
        reason = "the hot modules do not type-check, see the mypy errors above"
    else:
        reason = one_line(exc)
    print(f"gradpimsim: mypyc build failed, installing pure Python ({reason})", file=sys.stderr)


def say_plain(what: str, exc: BaseException) -> None:
    print(f"gradpimsim: {what}, building without it ({one_line(exc)})", file=sys.stderr)


class BuildExtOrPure(build_ext):
    """Build every compiled module or none: on any failure, drop them all and stay pure.

    (A module's thin extension without the shared ``*__mypyc`` library would fail to import, so
    a partial build must not be installed.)
    """

    def run(self) -> None:
        try:
            if self.extensions and os.name == "posix":
                self._run_tuned(profiled=os.environ.get("GRADPIMSIM_PGO") != "0")
            else:
                super().run()
        except Exception as exc:  # noqa: BLE001 - compiler missing, compile error, ...
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            say_pure(exc)

    def _run_tuned(self, profiled: bool) -> None:
        """Instrumented build, training run, final build with the profile and ``TUNING`` (only
        the last without ``profiled``).

        Whatever fails on the way (a compiler that is not GCC-compatible, the training run)
        leaves a plainer final build, with one line saying why: an instrumented build is never
        what gets installed."""
        profile = os.path.abspath(os.path.join(self.build_temp, "pgo-profile"))
        shutil.rmtree(profile, ignore_errors=True)
        plain = [(ext.extra_compile_args[:], ext.extra_link_args[:]) for ext in self.extensions]
        compiler = self.compiler  # run() replaces the name with a compiler object

        def build(compile_args: list[str], link_args: list[str]) -> None:
            for ext, (cargs, largs) in zip(self.extensions, plain, strict=True):
                ext.extra_compile_args = cargs + compile_args
                ext.extra_link_args = largs + link_args
            self.compiler = compiler
            self.force = True  # every pass compiles everything (a build/ left over is stale)
            build_ext.run(self)

        use: list[str] = []
        if profiled:
            try:
                build([*TUNING, f"-fprofile-generate={profile}"], ["-fprofile-generate"])
                self._train()
                if not (os.path.isdir(profile) and any(os.scandir(profile))):
                    raise RuntimeError("the training run recorded no profile")
                use = [f"-fprofile-use={profile}", "-fprofile-correction",
                       "-Wno-missing-profile"]
            except Exception as exc:  # noqa: BLE001 - no GCC-style profiling, training failed
                say_plain("profile-guided build skipped", exc)
        try:
            build([*TUNING, *use], [])
        except Exception as exc:  # noqa: BLE001 - a compiler without these options
            say_plain("tuned build failed", exc)
            build([], [])

    def _train(self) -> None:
        """Run ``PGO_TRAINING`` on the instrumented modules just built."""
        where = os.getcwd() if self.inplace else os.path.abspath(self.build_lib)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [where, *filter(None, [os.environ.get("PYTHONPATH")])]))
        # (run there: the current directory comes first on sys.path, and a source checkout's
        # own gradpimsim would shadow the modules just built)
        done = subprocess.run([sys.executable, "-c", PGO_TRAINING], env=env, cwd=where,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=900)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"the training run failed: {last}")


def compiled_modules() -> list:
    if os.environ.get("GRADPIMSIM_PURE") == "1" or os.environ.get("GRADPIMSIM_COMPILE") == "0":
        return []
    if NO_BUILD_COMMANDS & set(sys.argv[1:]):
        return []
    try:
        from mypyc.build import mypycify

        ext_modules = mypycify(["--ignore-missing-imports", *HOT_MODULES], opt_level="3")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure: stay pure Python
        say_pure(exc)
        return []
    return ext_modules


setup(ext_modules=compiled_modules(), cmdclass={"build_ext": BuildExtOrPure})

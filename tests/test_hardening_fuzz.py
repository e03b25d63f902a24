"""Property-based fuzzing of the whole command line (issue 20's "Done means").

Every subcommand is driven with generated bad files (random bytes, broken UTF-8, token soup,
deep or mistyped JSON, TOML with random values, directories, missing paths) and generated bad
options (negative, zero, huge, non-numeric, bracketed, infinite), with output options aimed at
fresh names, at someone else's file, at an input, at a directory and into a missing directory.
For each run:

- the exit code is 0 or 1 (the input was usable) or 2 (it was not): never 3 (an internal error)
  and never an exception out of ``main``;
- stderr has no traceback and at most one ``error:`` line;
- no file outside the declared outputs changed or appeared, no ``.partial.`` temporary file is
  left, and a run that exits 2 changed nothing at all.

The example count is fixed and the generation derandomized, so CI runs the same few hundred
cases in well under a minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradpimsim.cli import main

SUBCOMMANDS = ("trace", "check", "show", "export", "update-bench", "run", "compare", "presets",
               "sweep", "plot")

TOKENS = ["0x40", "READ", "WRITE", "10", "-5", "[timing]", "[bogus]", "tCK", "=", "inf",
          "1e400", "nan", "\"no\"", "{", "}", "[", "]", ",", "\"", "activate", "refresh", "-1",
          "-0x1", "key", "kind", "ok", "#", "0xffffffffffffffffff", "99999999999999999999",
          "[bold]x[/]", "é", "\t"]
BAD_INTS = ["-1", "0", "3", "16384", "1e3", "abc", "99999999999999999999999", "[x]", "", "-0"]
PRESETS = ["ddr4-2400", "ddr4-3200-x16-2r", "ddr5-9999", "[bold]x", "ddr4-2400-x8-3ch"]
SUFFIXES = (".trace", ".toml", ".ini", ".json", ".csv", ".gz")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["nodes", "links", "graph", "id", "op", "schema", "runs", "kind",
                         "grid", "params", "source", "target", "shape", "x"]), inner, max_size=4),
    max_leaves=12)


@st.composite
def file_content(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "tokens", "json", "deep", "toml", "nonutf8"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "tokens":
        lines = draw(st.lists(st.lists(st.sampled_from(TOKENS), max_size=9), max_size=6))
        return "\n".join(" ".join(ln) for ln in lines).encode()
    if kind == "json":
        import json

        return json.dumps(draw(json_values)).encode()
    if kind == "deep":
        n = draw(st.integers(50, 5000))
        return ("[" * n + "]" * n).encode()
    if kind == "nonutf8":
        return b"\xff\xfe\x00[timing]\ntCK = 1\n" + draw(st.binary(max_size=20))
    section = draw(st.sampled_from(["org", "timing", "controller", "power", "grid", "fixed",
                                    "dram_structure", "system"]))
    key = draw(st.sampled_from(["channels", "tCK_ns", "tCK", "refresh", "address_mapping",
                                "params", "rows", "IDD0", "protocol", "kind", "scheduler"]))
    value = draw(st.sampled_from(["inf", "1e400", "\"no\"", "5", "-1", "[1, 2]", "\"DDR4\"",
                                  "true", "0.0", "\"update-bench\"", "16384", "nan"]))
    head = draw(st.sampled_from(['base = "ddr4-2400"\n', 'kind = "update-bench"\n', ""]))
    return f"{head}[{section}]\n{key} = {value}\n".encode()


class Sandbox:
    """A directory of inputs and would-be outputs, snapshotted to detect any change."""

    def __init__(self, root: Path, content: bytes, suffix: str) -> None:
        self.root = root
        self.bad = root / f"bad{suffix}"
        self.bad.write_bytes(content)
        self.trace = root / "good.trace"
        self.trace.write_text("".join(f"{hex(i * 64)} READ {i * 4}\n" for i in range(20)))
        self.cmds = root / "good.cmds"
        self.cmds.write_text("10 activate 0 0 0 0 0x1 0x0\n40 read 0 0 0 0 0x1 0x0\n")
        self.foreign = root / "foreign.json"
        self.foreign.write_text('{"not": "ours"}\n')
        (root / "dir").mkdir()
        (root / "d.csv").mkdir()  # a directory with a file's name
        (root / "dir" / "results.json").write_text('{"someone": "else"}\n')

    def snapshot(self) -> dict[str, str]:
        out = {}
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                p = Path(dirpath) / name
                out[str(p.relative_to(self.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out


@st.composite
def invocation(draw: st.DrawFn, sub: str, box: Sandbox) -> tuple[list[str], set[str]]:
    """(argv, declared outputs relative to the sandbox: names and directory prefixes)."""
    outputs: set[str] = set()

    def out_path(suffix: str, src: str = "") -> str:
        """An output name; "input" aims it at the command's input, which must survive."""
        choice = draw(st.sampled_from(["fresh", "foreign", "input", "dir", "missing"]))
        if choice == "input" and src:
            return src  # not declared: the command must refuse to write it
        name = {"fresh": f"out{suffix}", "foreign": "foreign.json", "input": box.bad.name,
                "dir": "dir", "missing": f"nope/out{suffix}"}[choice]
        outputs.add(name)
        return str(box.root / name)

    def maybe(option: str, values: st.SearchStrategy[str]) -> list[str]:
        return [option, draw(values)] if draw(st.integers(0, 3)) == 0 else []

    ints = st.sampled_from(BAD_INTS) | st.sampled_from(["1", "2", "4"])
    bad_or_missing = st.sampled_from([str(box.bad), str(box.root / "dir"),
                                      str(box.root / "d.csv"), str(box.root / "missing.x")])
    config = st.sampled_from(["ddr4-2400"] * 6 + PRESETS + [str(box.bad)] * 3)
    force = ["--force"] if draw(st.booleans()) else []
    if sub == "trace":
        src = draw(st.sampled_from([str(box.trace)]) | bad_or_missing)
        argv = ["trace", src, *maybe("-c", config), *maybe("--channels", ints),
                *maybe("--ranks", ints)]
        if draw(st.booleans()):
            argv += ["--json", out_path(".json", src)]
        if draw(st.booleans()):
            argv += ["--cmd-trace", out_path(".trace", src)]
        argv += [f for f in ("--wrap", "--check") if draw(st.booleans())] + force
    elif sub == "check":
        src = draw(st.sampled_from([str(box.cmds)]) | bad_or_missing)
        argv = ["check", src, "-c", draw(config), *maybe("--end-clk", ints),
                *maybe("--show", ints), *maybe("--keep", ints), *maybe("--channel", ints)]
        if draw(st.booleans()):
            argv += ["--json", out_path(".json", src)]
        argv += force
    elif sub in ("show", "export"):
        name = draw(st.sampled_from(["mlp-small", "no-such-model"]) | bad_or_missing)
        argv = ["workloads", sub, name, *maybe("--batch", ints)]
        if sub == "export":
            argv += ["-o", out_path(".json", name if os.path.isfile(name) else ""), *force]
    elif sub == "update-bench":
        params = draw(st.sampled_from(["64", "128"]) | ints)
        argv = ["update-bench", "--params", params, "-c", draw(config),
                *maybe("--optimizer", st.sampled_from(["sgd", "adam", "[x]"])),
                *maybe("--step", ints), "--no-functional"]
        if draw(st.booleans()):
            argv += ["--json", out_path(".json")]
        argv += force
    elif sub in ("run", "compare"):
        workload = draw(st.sampled_from(["mlp-small"]) | bad_or_missing)
        npu = draw(bad_or_missing) if workload == "mlp-small" else "default"
        argv = [sub, workload, "-c", draw(config), "--npu", npu, *maybe("--batch", ints),
                *maybe("--channels", ints), *maybe("--bin-cycles", ints)]
        if draw(st.booleans()):
            argv += ["--out", out_path("")]
        argv += force
    elif sub == "presets":
        argv = ["presets", *([draw(st.sampled_from(PRESETS) | bad_or_missing)]
                             if draw(st.booleans()) else [])]
    elif sub == "sweep":
        spec = box.root / "spec.toml"
        if draw(st.booleans()):
            params = draw(st.lists(st.sampled_from(["64", "0", "-1", "10000000000000",
                                                    '"x"', "1.5"]), min_size=1, max_size=2))
            spec.write_text(f'kind = "update-bench"\n[fixed]\nfunctional = false\n'
                            f"[grid]\nparams = [{', '.join(params)}]\n")
        else:
            spec.write_bytes(box.bad.read_bytes())
        argv = ["sweep", str(spec), "--serial", "--quiet", *maybe("--max-points", ints)]
        if draw(st.booleans()):
            argv += ["--out", out_path(".csv")]
        else:
            outputs.add("spec.csv")
        if draw(st.booleans()):
            argv.append("--repair")
        outputs.update(f"{o}.rejected" for o in list(outputs))
    else:  # plot
        argv = ["plot", draw(bad_or_missing)]
        if draw(st.booleans()):
            argv += ["--out", out_path("")]
        else:
            outputs.add("")  # beside the input: any new PNG in the sandbox
        argv += force
    return argv, outputs


def _declared(rel: str, outputs: set[str]) -> bool:
    if rel.endswith(".png") and any(o == "" or rel.startswith(o) for o in outputs):
        return True
    return any(rel == o or (o and rel.startswith(o.rstrip("/") + "/")) for o in outputs)


@pytest.mark.no_checker
@pytest.mark.parametrize("sub", SUBCOMMANDS)
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_cli_fuzz(sub: str, data: st.DataObject) -> None:
    content = data.draw(file_content(), label="file")
    suffix = data.draw(st.sampled_from(SUFFIXES), label="suffix")
    with tempfile.TemporaryDirectory() as tmp:
        box = Sandbox(Path(tmp), content, suffix)
        if sub == "sweep":
            (box.root / "spec.toml").write_text("")
        argv, outputs = data.draw(invocation(sub, box), label="argv")
        before = box.snapshot()
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
        after = box.snapshot()
        text = err.getvalue()
        assert rc in (0, 1, 2), (argv, rc, text)
        assert "Traceback" not in text and "internal error" not in text, (argv, text)
        assert sum(ln.startswith("error:") for ln in text.splitlines()) <= 1, (argv, text)
        assert not [k for k in after if ".partial." in k], (argv, sorted(after))
        for rel, digest in before.items():
            if rel.startswith("spec.toml"):
                continue  # written by this test before the run
            if rc == 2 or not _declared(rel, outputs):
                assert after.get(rel) == digest, (argv, rel, text)
        for rel in set(after) - set(before):
            assert rc != 2 and _declared(rel, outputs), (argv, rel, text)

"""``python:MODULE:FUNCTION`` workloads: refused without --allow-python, clear one-line errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from gradpimsim.cli import main
from gradpimsim.graph import GraphError
from gradpimsim.graph.importers.python_entry import ALLOW_ENV, load_python, parse_spec

MODELS = '''
import torch
from torch import nn

def mlp(batch: int = 4):
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))
    return model, torch.zeros(batch, 16)

def cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))

def bert(batch: int = 1, seq_len: int = 8):
    from transformers import BertConfig, BertModel
    config = BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                        intermediate_size=128)
    return BertModel(config).eval(), torch.zeros(batch, seq_len, dtype=torch.long)

NOT_CALLABLE = 3

def broken():
    raise RuntimeError("no weights here")

def not_a_module():
    return 42
'''


def one_line(text: str) -> str:
    """The error as one line (the console may wrap it at the terminal's width)."""
    return " ".join(text.split())


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's model file in the current directory; the permission cleared before and after
    (``--allow-python`` sets it for the process and its workers)."""
    (tmp_path / "user_models.py").write_text(textwrap.dedent(MODELS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "user_models", raising=False)
    yield tmp_path
    sys.modules.pop("user_models", None)


def test_spec_parsing() -> None:
    assert parse_spec("python:pkg.mod:make@1x3x224x224,int64:2x128") == (
        "pkg.mod", "make", [([1, 3, 224, 224], "fp32"), ([2, 128], "int64")])
    assert parse_spec("python:models/net.py:build") == ("models/net.py", "build", None)
    for bad, match in (("python:mod", "expected python:MODULE:FUNCTION"),
                       ("python:m:f@1x0", "not like 1x3x224x224"),
                       ("python:m:f@int8:1x2", "unknown input dtype")):
        with pytest.raises(GraphError, match=match):
            parse_spec(bad)


def test_refused_without_allow_python(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workloads", "show", "python:user_models:mlp"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "runs that Python code" in err and "--allow-python" in err
    assert "user_models" not in sys.modules  # nothing was imported
    with pytest.raises(GraphError, match="--allow-python"):
        load_python("python:user_models:mlp")


def test_allowed_traces_the_module(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    assert main(["workloads", "show", "python:user_models:mlp", "--allow-python",
                 "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert f"{16 * 32 + 32 + 32 * 10 + 10:,}" in out  # parameters
    g = load_python("python:user_models:mlp", batch=8, allow=True)
    assert g.graph["batch"] == 8  # mlp() takes batch
    # Shapes in the spec; --batch replaces their first dimension when the function takes none.
    g = load_python("python:user_models:cnn@2x3x16x16", batch=5, allow=True)
    assert g.nodes["input"]["out_shape"] == [5, 3, 16, 16]
    g = load_python(f"python:{models / 'user_models.py'}:cnn@2x3x16x16", allow=True)
    assert g.nodes["0"]["flops"] == 2 * 2 * 8 * 16 * 16 * 3 * 9


def test_export_json_then_run_without_python(models: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "mlp.json"
    assert main(["workloads", "export", "python:user_models:mlp", "--allow-python",
                 "-o", str(out)]) == 0
    from gradpimsim.graph import load_graph, param_count
    assert param_count(load_graph(out)) == 16 * 32 + 32 + 32 * 10 + 10


def test_run_accepts_the_option(models: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    assert main(["run", "python:user_models:mlp"]) == 2
    assert "--allow-python" in capsys.readouterr().err
    assert main(["run", "python:user_models:mlp", "--allow-python", "--batch", "2"]) == 0
    assert "iteration" in capsys.readouterr().out


@pytest.mark.parametrize("spec,match", [
    ("python:no_such_module:f", "no module named 'no_such_module'"),
    ("python:user_models:nothere", "has no attribute 'nothere'"),
    ("python:user_models:NOT_CALLABLE", "is not callable"),
    ("python:user_models:broken", r"broken\(\) raised RuntimeError: no weights here"),
    ("python:user_models:not_a_module", "must return a torch.nn.Module"),
    ("python:user_models:cnn", "no example input shapes"),
    ("python:missing_file.py:f", "no such file"),
])
def test_errors_are_one_line(models: Path, capsys: pytest.CaptureFixture[str], spec: str,
                             match: str) -> None:
    pytest.importorskip("torch")
    assert main(["workloads", "show", spec, "--allow-python"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error:")
    with pytest.raises(GraphError, match=match):
        load_python(spec, allow=True)


def test_seq_len_needs_a_parameter(models: Path) -> None:
    pytest.importorskip("torch")
    with pytest.raises(GraphError, match="takes no seq_len"):
        load_python("python:user_models:mlp", seq_len=16, allow=True)


def test_no_torch_is_one_line(models: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ModuleNotFoundError
    assert main(["workloads", "show", "python:user_models:mlp", "--allow-python"]) == 2
    assert "needs PyTorch (pip install torch)" in one_line(capsys.readouterr().err)


def test_hugging_face_model_from_entry_point(models: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    g = load_python("python:user_models:bert", batch=2, seq_len=16, allow=True)
    q = g.nodes["encoder.layer.0.attention.self.query"]
    assert q["in_shapes"] == [[2, 16, 64]] and q["flops"] == 2 * 32 * 64 * 64

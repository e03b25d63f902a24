"""``gradpimsim workloads`` subcommands."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradpimsim.cli import main
from gradpimsim.graph import load_graph


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workloads", "list"]) == 0
    text = capsys.readouterr().out
    for name in ("resnet18", "bert-large", "lstm-lm", "138,357,544"):
        assert name in text


def test_show_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workloads", "show", "mlp", "--batch", "8", "--optimizer", "adam",
                 "--precision", "fp32"]) == 0
    text = capsys.readouterr().out
    assert "10,020,874" in text and "fc3" in text
    assert "adam *" in text and "16" in text  # adam fp32: 16 bytes read per parameter


def test_show_sequence_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workloads", "show", "lstm-lm", "--seq-len", "10", "--batch", "2"]) == 0
    assert "19,780,400" in capsys.readouterr().out


def test_user_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["workloads", "show", "alexnet"]) == 2
    assert "known: mlp" in capsys.readouterr().err
    assert main(["workloads", "show", "resnet18", "--seq-len", "4"]) == 2
    assert main(["workloads", "show", str(tmp_path / "none.json")]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("Layer,M,N,K,\nfc,1,x,2,\n")
    assert main(["workloads", "show", str(bad)]) == 2
    assert "bad.csv:2 (fc)" in capsys.readouterr().err


def test_export_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r18.json"
    assert main(["workloads", "export", "resnet18", "--batch", "2", "-o", str(out)]) == 0
    assert load_graph(out).graph["batch"] == 2
    assert main(["workloads", "show", str(out)]) == 0
    assert "11,689,512" in capsys.readouterr().out

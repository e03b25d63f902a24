"""The sweep's result table: one CSV row per point, appended and fsynced as each point finishes.

Columns: ``key, kind, version, status, error, wall_s``, then the parameter columns, then the metric
columns (each group in first-seen order).  A row is written as one line (newlines in error text
are replaced) with a single ``write`` followed by ``flush`` and ``fsync``, so a killed sweep
loses at most the line being written; :class:`ResultStore` sets such a torn last line aside.  A
row that brings a column the header lacks makes the store rewrite the file with the wider header
(to a temporary file, fsynced, then renamed over the table), so the file is always one valid
table.  Every row is checked when the table is opened: a corrupt one is reported with its file
and line, and ``repair`` moves such rows to a side file (see :class:`ResultStore`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gradpimsim.config import ConfigError
from gradpimsim.errors import UserError, clip, clip_repr

#: Leading columns, always present, in this order.
BASE_COLUMNS = ("key", "kind", "version", "status", "error", "wall_s")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\r", " ").replace("\n", " | ")
    return value


class SweepTableError(ConfigError):
    """A sweep table cannot be used as it is (corrupt row, foreign file): exit code 2."""


_KEY = re.compile(r"[^\s,\"]{1,64}")  # point_key() makes 16 hex digits; tools may differ
STATUSES = ("ok", "failed")


def _row_problem(fields: list[str], ncols: int, seen: set[str]) -> str:
    """Why a parsed row is not a valid table row ('' when it is)."""
    if len(fields) != ncols:
        return f"{len(fields)} fields where the header has {ncols}"
    key, kind, _version, status = fields[:4]
    if not _KEY.fullmatch(key):
        return f"key {clip_repr(key, 40)} is empty or holds spaces"
    if not kind:
        return "empty kind"
    if status not in STATUSES:
        return f"status {clip_repr(status, 40)} is neither ok nor failed"
    if key in seen:
        return f"point {key} is already in the table (a duplicate row)"
    return ""


class ResultStore:
    """Append-only CSV table of sweep points (single writer: the process driving the sweep).

    Opening it checks every row.  A row that is not one well-formed line (a stray quote, a
    truncated or joined line, a wrong number of fields, an invalid key or status, a point
    already recorded) stops with an error naming the file and line; with ``repair=True`` such
    rows are moved to the side file ``<table>.rejected`` (appended, never overwritten) and the
    table is rewritten with the good rows, in order.  A torn last line (a kill mid-write) is
    always moved there.  No point is ever recorded twice.
    """

    def __init__(self, path: str | Path, *, repair: bool = False) -> None:
        self.path = Path(path)
        self.columns: list[str] = list(BASE_COLUMNS)
        self.rows: list[dict[str, str]] = []
        self.rejected = 0
        self._keys: set[str] = set()
        self._open(repair)

    @property
    def side_path(self) -> Path:
        """Where rows that could not be read are kept (appended), beside the table."""
        return self.path.with_name(self.path.name + ".rejected")

    # -- reading ---------------------------------------------------------------------------
    def _open(self, repair: bool) -> None:
        from gradpimsim.io_safety import read_input_text

        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        try:
            text = read_input_text(self.path, limit=1 << 40)
        except UserError as exc:
            raise SweepTableError("out", f"{exc}; choose another --out") from None
        torn = ""
        if not text.endswith("\n"):  # a kill while writing the last line: set it aside
            cut = text.rfind("\n") + 1
            text, torn = text[:cut], text[cut:]
        lines = text.split("\n")[:-1]
        header = next(csv.reader(lines[:1]), []) if lines else []
        if list(header[: len(BASE_COLUMNS)]) != list(BASE_COLUMNS):
            start = clip(", ".join(header[:3]), 80) or "with nothing"
            raise SweepTableError("out", f"{clip(self.path, 300)}: not a gradpimsim sweep table "
                                  f"(its columns start {start}; expected "
                                  f"{', '.join(BASE_COLUMNS[:3])}, ...); choose another --out")
        self.columns = list(header)
        bad: list[tuple[int, str, str]] = []
        for lineno, line in enumerate(lines[1:], start=2):
            try:
                fields = next(csv.reader([line], strict=True), [])
                problem = _row_problem(fields, len(header), self._keys)
            except csv.Error as exc:
                problem = f"not one CSV record ({exc})"
            if problem:
                bad.append((lineno, line, problem))
                continue
            self._keys.add(fields[0])
            self.rows.append(dict(zip(header, fields, strict=True)))
        if bad and not repair:
            lineno, line, problem = bad[0]
            raise SweepTableError(
                "out", f"{clip(self.path, 300)}:{lineno}: corrupt row ({problem}): "
                f"{clip_repr(line, 80)}; {len(bad)} bad row(s) in all. Nothing was changed; run "
                f"the sweep again with --repair to move them to {self.side_path.name} and keep "
                f"the other {len(self.rows)} row(s)")
        if bad or torn:
            self._quarantine([(n, ln, why) for n, ln, why in bad]
                             + ([(len(lines) + 1, torn, "torn last line")] if torn else []))
            self._rewrite()

    def _quarantine(self, rows: list[tuple[int, str, str]]) -> None:
        """Append rows set aside to the side file, each after a comment saying why."""
        self.rejected += len(rows)
        with open(self.side_path, "a", encoding="utf-8", newline="") as fh:
            for lineno, line, why in rows:
                fh.write(f"# {self.path.name}:{lineno}: {why}\n{line}\n")
            fh.flush()
            os.fsync(fh.fileno())

    def status(self) -> dict[str, str]:
        """Key -> status of every recorded point."""
        return {r["key"]: r["status"] for r in self.rows}

    # -- writing ---------------------------------------------------------------------------
    def drop(self, keys: Iterable[str]) -> None:
        """Remove the rows of ``keys`` (used before retrying failed points)."""
        keys = set(keys)
        if not keys:
            return
        self.rows = [r for r in self.rows if r["key"] not in keys]
        self._keys -= keys
        self._rewrite()

    def append(self, row: Mapping[str, Any]) -> bool:
        """Record one point durably (flush + fsync before returning).  A point already in the
        table is not recorded again (False)."""
        key = str(row.get("key", ""))
        if key in self._keys:
            return False
        new = [c for c in row if c not in self.columns]
        record = {c: _cell(row.get(c)) for c in row}
        self._keys.add(key)
        if new or not self.path.exists() or self.path.stat().st_size == 0:
            self.columns.extend(new)
            self.rows.append({k: str(v) for k, v in record.items()})
            self._rewrite()
            return True
        buf = io.StringIO()
        csv.DictWriter(buf, self.columns, lineterminator="\n").writerow(record)
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append({k: str(v) for k, v in record.items()})
        return True

    def _rewrite(self) -> None:
        """The whole table, through an exclusive temporary file renamed over it (durable)."""
        from gradpimsim.io_safety import atomic_open

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, self.columns, lineterminator="\n")
            writer.writeheader()
            for r in self.rows:
                writer.writerow({c: r.get(c, "") for c in self.columns})


def load_results(path: str | Path, *, repair: bool = False) -> Any:
    """The sweep table at ``path`` as a pandas DataFrame (one row per point).

    Raises :class:`SweepTableError` (file and line) for a corrupt table unless ``repair``.
    """
    import pandas as pd

    store = ResultStore(path, repair=repair)  # validates every row, sets a torn line aside
    if not store.rows:
        return pd.DataFrame(columns=store.columns)
    return pd.read_csv(store.path, dtype={"key": str})

"""The sweep's result table: one CSV row per point, appended and fsynced as each point finishes.

Columns: ``key, kind, version, status, error, wall_s``, then the parameter columns, then the metric
columns (each group in first-seen order).  A row is written as one line (newlines in error text
are replaced) with a single ``write`` followed by ``flush`` and ``fsync``, so a killed sweep
loses at most the line being written; :meth:`ResultStore.open` drops such a torn last line.  A
row that brings a column the header lacks makes the store rewrite the file with the wider header
(to a temporary file, fsynced, then renamed over the table), so the file is always one valid
table.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Leading columns, always present, in this order.
BASE_COLUMNS = ("key", "kind", "version", "status", "error", "wall_s")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\r", " ").replace("\n", " | ")
    return value


class ResultStore:
    """Append-only CSV table of sweep points (single writer: the process driving the sweep)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = list(BASE_COLUMNS)
        self.rows: list[dict[str, str]] = []
        self._open()

    # -- reading ---------------------------------------------------------------------------
    def _open(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        text = self.path.read_text(encoding="utf-8")
        torn = not text.endswith("\n")
        if torn:  # a kill while writing the last line: drop it
            text = text[: text.rfind("\n") + 1]
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        if list(header[: len(BASE_COLUMNS)]) != list(BASE_COLUMNS):
            raise ValueError(f"{self.path}: not a gradpimsim sweep table (its columns start "
                             f"{', '.join(header[:3]) or 'with nothing'}; expected "
                             f"{', '.join(BASE_COLUMNS[:3])}, ...); choose another --out")
        self.columns = list(header)
        self.rows = [dict(r) for r in reader]
        if torn:
            self._rewrite()

    def status(self) -> dict[str, str]:
        """Key -> status of every recorded point (the last row wins)."""
        return {r["key"]: r["status"] for r in self.rows}

    # -- writing ---------------------------------------------------------------------------
    def drop(self, keys: Iterable[str]) -> None:
        """Remove the rows of ``keys`` (used before retrying failed points)."""
        keys = set(keys)
        if not keys:
            return
        self.rows = [r for r in self.rows if r["key"] not in keys]
        self._rewrite()

    def append(self, row: Mapping[str, Any]) -> None:
        """Record one point durably (flush + fsync before returning)."""
        new = [c for c in row if c not in self.columns]
        record = {c: _cell(row.get(c)) for c in row}
        if new or not self.path.exists() or self.path.stat().st_size == 0:
            self.columns.extend(new)
            self.rows.append({k: str(v) for k, v in record.items()})
            self._rewrite()
            return
        buf = io.StringIO()
        csv.DictWriter(buf, self.columns, lineterminator="\n").writerow(record)
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append({k: str(v) for k, v in record.items()})

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, self.columns, lineterminator="\n")
            writer.writeheader()
            for r in self.rows:
                writer.writerow({c: r.get(c, "") for c in self.columns})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        try:  # make the rename itself durable
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


def load_results(path: str | Path) -> Any:
    """The sweep table at ``path`` as a pandas DataFrame (one row per point)."""
    import pandas as pd

    store = ResultStore(path)  # validates the header, drops a torn last line
    if not store.rows:
        return pd.DataFrame(columns=store.columns)
    return pd.read_csv(store.path)

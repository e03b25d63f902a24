"""Output files: checked before any work, written atomically, never someone else's.

Three rules, for every file a subcommand writes:

1. **Pre-flight.**  :func:`preflight` checks every output path before the simulation starts, so a
   run never ends in "cannot write" with its results lost: the directory exists (``--out DIR`` is
   created) and a file can be created in it; the path is not a directory, not a device or other
   special file, not one of the inputs and not named twice.
2. **Ownership.**  An existing file is replaced only if gradpimsim wrote it (or it is empty);
   anything else needs ``--force``.  gradpimsim recognises its own files by a mark each carries:

   - JSON (results, statistics, reports, timelines, graphs): a ``"schema": "gradpimsim.<kind>/N"``
     field (:data:`JSON_MARK`);
   - command traces: a first line ``# gradpimsim ...`` (plain or gzip);
   - ``tasks.csv``: its header line; sweep tables: their leading columns ``key,kind,version,...``;
   - PNG plots: a ``Software`` text chunk naming gradpimsim; PDF and SVG plots: their creator
     (``/Creator (gradpimsim ...)``, ``<dc:title>gradpimsim ...`` in the SVG's metadata).

   A symbolic link is never taken for ours (``--force`` replaces the link, not its target).
3. **Atomic, exclusive writes.**  Data goes to a temporary file in the target directory, created
   with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under an unpredictable name
   (``.partial.<random>.<name>``), and is renamed over the target only when complete; on any error
   the temporary file is removed.  A planted file or link at the temporary name cannot redirect
   the write, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gradpimsim.errors import InputError, OutputError, UserError, clip, os_error_message

#: The mark of gradpimsim's JSON files (the value of their top-level, or graph, ``schema``).
JSON_MARK = b'"schema": "gradpimsim.'
JSON_MARK_COMPACT = b'"schema":"gradpimsim.'
#: First-line prefix of gradpimsim's command traces.
TRACE_MARK = b"# gradpimsim"
#: Text of the PNG ``Software`` chunk gradpimsim writes.
PNG_SOFTWARE = "gradpimsim"
PARTIAL_PREFIX = ".partial."

KINDS = ("json", "cmd-trace", "tasks-csv", "sweep-table", "png", "pdf", "svg", "text")
#: Marks of gradpimsim's PDF and SVG plots (matplotlib's ``Creator`` metadata).
PDF_MARK = b"/Creator (gradpimsim"
SVG_MARK = b"<dc:title>gradpimsim"


@dataclass(frozen=True)
class Output:
    """One file a command will write: the option that named it, its path and its kind."""

    option: str
    path: Path
    kind: str

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind


def output(option: str, path: str | Path | None, kind: str) -> Output | None:
    """An :class:`Output`, or None for no path or ``-`` (standard output)."""
    if path is None or str(path) == "-" or str(path) == "":
        return None
    return Output(option, Path(path), kind)


# ---------------------------------------------------------------------------- ownership marks
def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read(n)
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read(n)
        except (OSError, EOFError):
            return b""
    return raw


def _contains(path: Path, needles: tuple[bytes, ...], chunk: int = 1 << 20) -> bool:
    """Whether the file holds one of ``needles`` (streamed: outputs can be large)."""
    keep = max(len(n) for n in needles)
    tail = b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                return False
            data = tail + block
            if any(n in data for n in needles):
                return True
            tail = data[-keep:]


def _png_software(path: Path) -> str:
    """The PNG's ``Software`` tEXt value ('' if none before the image data)."""
    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return ""
        for _ in range(64):
            head = fh.read(8)
            if len(head) < 8:
                return ""
            length = int.from_bytes(head[:4], "big")
            kind = head[4:]
            if kind == b"IDAT" or length > 1 << 20:
                return ""
            body = fh.read(length)
            fh.read(4)  # CRC
            if kind == b"tEXt" and body.startswith(b"Software\0"):
                return body[9:].decode("latin-1")
    return ""


def is_ours(path: Path, kind: str) -> bool:
    """Whether an existing file carries gradpimsim's mark for ``kind`` (see the module doc)."""
    try:
        if path.is_symlink() or not path.is_file():
            return False
        if path.stat().st_size == 0:
            return True  # nothing to lose
        if kind == "json":
            return _contains(path, (JSON_MARK, JSON_MARK_COMPACT))
        if kind == "cmd-trace":
            return _head(path, len(TRACE_MARK)) == TRACE_MARK
        if kind == "tasks-csv":
            return _head(path, 64).startswith(b"run,task,")
        if kind == "sweep-table":
            return _head(path, 64).startswith(b"key,kind,version,status,error,wall_s")
        if kind == "png":
            return PNG_SOFTWARE in _png_software(path)
        if kind == "pdf":
            return _head(path, 5) == b"%PDF-" and _contains(path, (PDF_MARK,))
        if kind == "svg":
            return SVG_MARK in _head(path, 4096)
        return False
    except OSError:
        return False


# ---------------------------------------------------------------------------- pre-flight
def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _check_writable_dir(option: str, directory: Path) -> None:
    if not directory.exists():
        raise OutputError(f"{option}: cannot write in {clip(directory, 300)}: the directory "
                          "does not exist; create it first or choose another place")
    if not directory.is_dir():
        raise OutputError(f"{option}: cannot write in {clip(directory, 300)}: not a directory")
    try:  # the real test (permissions, read-only mounts, quotas...), whoever we run as
        fd, probe = _create_exclusive(directory, "write-test")
    except OSError as exc:
        raise OutputError(f"{option}: cannot create files in {clip(directory, 300)}: "
                          f"{os_error_message(exc)}") from None
    os.close(fd)
    os.unlink(probe)


def make_out_dir(option: str, directory: str | Path) -> Path:
    """``--out DIR``: create it (and its parents) if needed; it must be a writable directory."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise OutputError(f"{option} {clip(d, 300)}: exists and is not a directory; give a "
                          "directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{option}: cannot create directory {clip(d, 300)}: "
                          f"{os_error_message(exc)}") from None
    return d


def preflight(outputs: Iterable[Output | None], inputs: Iterable[str | Path | None] = (), *,
              force: bool = False) -> list[Output]:
    """Check every output before any work (see the module doc); return the checked outputs.

    Raises :class:`OutputError` naming the option and the path, with the fix.
    """
    outs = [o for o in outputs if o is not None]
    ins = [Path(p) for p in inputs if p is not None and str(p) != "-"]
    seen: list[Output] = []
    for o in outs:
        p = o.path
        name = f"{o.option} {clip(p, 300)}"
        for other in seen:
            if _same_file(p, other.path):
                raise OutputError(f"{name}: also given to {other.option}; give each output its "
                                  "own file")
        for src in ins:  # (a preset name is not a file: only existing inputs count)
            if src.exists() and (_same_file(p, src) if p.exists() else
                                 os.path.abspath(p) == os.path.abspath(src)):
                raise OutputError(f"{name}: this is an input of the command; writing it would "
                                  "destroy it, choose another output name")
        if p.is_dir():
            raise OutputError(f"{name}: is a directory; give a file name")
        if p.exists() or p.is_symlink():
            mode = os.lstat(p).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                raise OutputError(f"{name}: is not a regular file (a device, pipe or socket); "
                                  "give a file name")
            if not force and not is_ours(p, o.kind):
                what = ("a symbolic link" if stat.S_ISLNK(mode)
                        else "a file gradpimsim did not write")
                raise OutputError(f"{name}: exists and is {what}; choose another name, or pass "
                                  "--force to replace it")
        _check_writable_dir(o.option, p.parent if str(p.parent) else Path("."))
        seen.append(o)
    return seen


# ---------------------------------------------------------------------------- atomic writes
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | \
    getattr(os, "O_CLOEXEC", 0)


def partial_name(path: Path, token: str | None = None) -> Path:
    """The temporary name of ``path`` while it is written: unpredictable, in its directory, with
    the same suffix (so a ``.gz`` target is still compressed by suffix-driven writers)."""
    token = token or secrets.token_hex(8)
    return path.with_name(f"{PARTIAL_PREFIX}{token}.{path.name[-120:]}")


def _create_exclusive(directory: Path, name: str) -> tuple[int, Path]:
    for _ in range(16):
        tmp = partial_name(directory / name)
        try:
            return os.open(tmp, _OPEN_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot find a free temporary name in {directory}")


def create_partial(path: Path, token: str | None = None) -> tuple[int, Path]:
    """Create the temporary file of ``path`` exclusively; returns (fd, temporary path)."""
    if token is not None:
        tmp = partial_name(path, token)
        return os.open(tmp, _OPEN_FLAGS, 0o666), tmp
    return _create_exclusive(path.parent if str(path.parent) else Path("."), path.name)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp: Path, path: Path) -> None:
    """Give the finished temporary file its name (atomic within the directory)."""
    os.replace(tmp, path)
    _fsync_dir(path.parent if str(path.parent) else Path("."))


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file for ``path``; on success it replaces ``path``, on error it goes."""
    target = Path(path)
    fd, tmp = create_partial(target)
    try:
        if "b" in mode:
            fh: IO[Any] = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        commit(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w", newline="") as fh:
        fh.write(text)


def discard(tmp: Path | None) -> None:
    """Remove a temporary file if it is there (an interrupted or failed write)."""
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# ---------------------------------------------------------------------------- reading inputs
#: Largest configuration-like text file read whole (TOML, JSON, .ini, specs, results).
MAX_INPUT_BYTES = 256 * 2**20


def read_input_text(path: str | Path, *, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of an input file read whole, or a one-line :class:`InputError`: not
    found, a directory, unreadable, larger than ``limit``, or not UTF-8 (with the byte offset)."""
    from gradpimsim.errors import unicode_message

    p = Path(path)
    shown = clip(p, 300)
    if p.is_dir():
        raise InputError(f"{shown}: is a directory; give a file")
    try:
        size = p.stat().st_size
        if size > limit:
            raise InputError(f"{shown}: {size:,} bytes is too large for this kind of file "
                             f"(at most {limit:,}); check the path")
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(os_error_message(exc)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(unicode_message(exc, shown)) from None


def load_json_input(path: str | Path, *, limit: int = MAX_INPUT_BYTES) -> Any:
    """Strict JSON of an input file: errors name ``file:line:column``; ``NaN``/``Infinity``
    and nesting deeper than :data:`MAX_JSON_DEPTH` are refused."""
    text = read_input_text(path, limit=limit)
    return parse_json(text, str(clip(path, 300)))


#: Deepest nesting of arrays/objects accepted in an input JSON file.
MAX_JSON_DEPTH = 64


def _json_depth_ok(text: str) -> bool:
    """Nesting depth at most :data:`MAX_JSON_DEPTH` (brackets outside strings), in one pass."""
    import re

    depth = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif tok in "]}":
            depth -= 1
    return True


def parse_json(text: str, source: str) -> Any:
    import json

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    if not _json_depth_ok(text):
        raise InputError(f"{source}: nested more than {MAX_JSON_DEPTH} levels deep; this is "
                         "not a gradpimsim file")
    try:
        return json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{source}: invalid JSON: {exc}") from None


def check_input_file(option: str, path: str) -> None:
    """An input path names a readable regular file (a directory is not "not found")."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option} {clip(path, 300)}: is a directory; give a file")
    if not p.exists():
        raise UserError(f"{option} {clip(path, 300)}: not found (no such file); check the path")
    if not os.access(p, os.R_OK):
        raise UserError(f"{option} {clip(path, 300)}: not readable; check its permissions")

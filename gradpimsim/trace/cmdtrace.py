"""DRAMsim3-style command traces: a streaming reader and a buffered writer.

One command a line: ``<clk> <cmd> <channel> <rank> <bankgroup> <bank> <row hex> <col hex>``.
Command traces of a long simulation hold hundreds of millions of lines, so the reader never loads
a file whole: it decodes ~256 KB at a time and yields one :class:`~gradpimsim.dram.commands.Command`
per line, keeping track of line numbers for error messages (and for the checker's).  ``.gz``
files are read and written transparently, chosen by suffix.

GradPIM commands are spelled ``PIM_<what>``; the reader maps any such name onto the four PIM
command kinds by the words it contains (``RD``/``LD``: bank read, ``WR``/``ST``: bank write,
``OP``: register arithmetic, ``SET``/``MRS``/``CFG``: scalar-register load), so traces of other
GradPIM tools with their own names still read.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, repeat
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from gradpimsim.dram.commands import TRACE_NAME, Cmd, Command
from gradpimsim.errors import clip_repr

__all__ = [
    "CommandTraceError",
    "CommandTraceFile",
    "CommandTraceReader",
    "CommandTraceWriter",
    "parse_command_name",
    "read_command_trace",
]

_BY_NAME: dict[str, Cmd] = {name: cmd for cmd, name in TRACE_NAME.items()}
_NEW = tuple.__new__  # builds a Command without NamedTuple's keyword-handling __new__
_BUFFER_LINES = 4096
_CHUNK_BYTES = 1 << 18
#: Small decimal fields decode by dictionary lookup (faster than int()).
_SMALL: dict[str, int] = {str(i): i for i in range(-1, 256)}
_UINT: dict[str, int] = {str(i): i for i in range(256)}
_SMALL_HEX: dict[str, int] = {f"{i:#x}": i for i in range(4096)} | {"-1": -1, "-0x1": -1}


class CommandTraceError(ValueError):
    """A command trace cannot be used: names the file and line so the user can fix it."""

    def __init__(self, path: str | Path, line_no: int, message: str) -> None:
        where = f"{path}:{line_no}" if line_no > 0 else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line_no = line_no
        self.message = message


def parse_command_name(name: str) -> Cmd | None:
    """The command a trace name stands for, or ``None`` if the name is unknown.

    DRAMsim3 names are exact; PIM names are matched by the words they contain, checked in the
    order read, write, op, set (so ``PIM_RD_ADD`` is a bank read).
    """
    cmd = _BY_NAME.get(name)
    if cmd is not None:
        return cmd
    upper = name.upper()
    if not upper.startswith("PIM_") or len(upper) == 4:
        return None
    what = upper[4:]
    if "RD" in what or "LD" in what:
        return Cmd.PIM_RD
    if "WR" in what or "ST" in what:
        return Cmd.PIM_WR
    if "OP" in what:
        return Cmd.PIM_OP
    if "SET" in what or "MRS" in what or "CFG" in what:
        return Cmd.PIM_SET
    return None


def _open_text(path: Path, mode: str) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8", buffering=1 << 20)  # noqa: SIM115


def _open_fd(fd: int, path: Path) -> IO[str]:
    """A text writer on an already created file descriptor (gzip if ``path`` ends in .gz)."""
    raw = os.fdopen(fd, "wb", buffering=1 << 20)
    if path.suffix.lower() == ".gz":
        gz = gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0)
        return _Closing(io.TextIOWrapper(gz, encoding="utf-8"), raw)  # type: ignore[return-value]
    return io.TextIOWrapper(raw, encoding="utf-8")


class _Closing:
    """A gzip text stream that also closes the file under it (GzipFile leaves a fileobj open)."""

    def __init__(self, text: io.TextIOWrapper, raw: IO[bytes]) -> None:
        self._text = text
        self._raw = raw

    def write(self, s: str) -> int:
        return self._text.write(s)

    def close(self) -> None:
        self._text.close()
        self._raw.close()


class CommandTraceReader:
    """Iterate over the commands of a trace file; ``line_no`` is the last line read.

    :func:`read_command_trace` gives a plain iterator.  :meth:`chunks` serves consumers that need
    the line of each command (the offline checker names the line it rejects): it yields
    ``(lines, commands)`` lists, where ``lines`` is the first command's line number when the
    chunk's commands sit on consecutive lines, else the list of their line numbers.

    Chunks of about 256 KB are decoded with whole-chunk ``str.split`` and C-level ``map`` calls,
    which is several times faster than parsing line by line; a chunk with comments, blank lines
    or anything unexpected is parsed line by line instead, which also finds the exact line of an
    error (commands before a bad line are still delivered before the error is raised).
    """

    def __init__(self, path: str | Path, *, channel: int | None = None) -> None:
        self.path = Path(path)
        self.line_no = 0
        self._names = dict(_BY_NAME)  # grows with PIM spellings met in this file
        #: What channel ``-1`` stands for (see :meth:`file_channel`); found on first need.
        self._wild = channel
        self._channels: dict[str, int] = dict(_UINT)

    def file_channel(self) -> int:
        """The channel that ``-1`` stands for.  DRAMsim3 writes one command trace per channel
        and gives the commands it makes for refresh (the REF and the precharges before it)
        channel -1: they belong to the file's channel, that of its first command with a
        channel (0 when it has none; ``channel=`` overrides)."""
        if self._wild is None:
            self._wild = 0
            try:
                with _open_text(self.path, "r") as fh:
                    for n, line in enumerate(fh):
                        parts = line.split("#", 1)[0].split()
                        if len(parts) == 8 and parts[2].isdigit():
                            self._wild = int(parts[2])
                            break
                        if n > 1_000_000:
                            break
            except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError):
                pass  # the reading proper reports it, with the line
            self._channels["-1"] = self._wild
        return self._wild

    def __iter__(self) -> Iterator[Command]:
        return chain.from_iterable(cmds for _, cmds in self.chunks())

    def chunks(self) -> Iterator[tuple[int | list[int], list[Command]]]:
        """Yield ``(first line or line numbers, commands)`` chunk by chunk."""
        if not self.path.exists():
            raise CommandTraceError(self.path, 0, "file not found")
        if self.path.is_dir():
            raise CommandTraceError(self.path, 0, "is a directory, expected a command trace file")
        try:
            with _open_text(self.path, "r") as fh:
                line_no = 0
                rest = ""
                while True:
                    text = fh.read(_CHUNK_BYTES)
                    if not text:
                        body, rest = rest, ""
                        if not body:
                            return
                        body += "\n"  # last line without a newline
                    else:
                        cut = text.rfind("\n") + 1
                        if not cut:
                            rest += text
                            continue
                        body, rest = rest + text[:cut], text[cut:]
                    n_lines = body.count("\n")
                    first = line_no + 1
                    line_no += n_lines
                    plain = "#" not in body and "\n\n" not in body
                    cmds = self._fast(body, n_lines) if plain else None
                    if cmds is not None:
                        self.line_no = line_no
                        yield first, cmds
                    else:
                        yield from self._slow(body.split("\n")[:-1], first)
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as exc:
            raise CommandTraceError(self.path, self.line_no + 1, f"cannot read: {exc}") from None

    def _fast(self, text: str, n_lines: int) -> list[Command] | None:
        """Decode a chunk of well-formed lines at once, or ``None`` to fall back."""
        tok = text.split()
        if len(tok) != 8 * n_lines:
            return None
        try:
            cs = list(map(self._names.__getitem__, tok[1::8]))
        except KeyError:
            return None
        try:
            clk = list(map(int, tok[0::8]))
            row = list(map(int, tok[6::8], repeat(16)))
            try:
                # Dictionary decoding accepts only in-range spellings (channel and rank >= 0,
                # bank group, bank and column >= -1), so only clk and row need a range check.
                if "-1" not in self._channels and "-1" in tok[2::8]:
                    self.file_channel()
                ch = list(map(self._channels.__getitem__, tok[2::8]))
                rk = list(map(_UINT.__getitem__, tok[3::8]))
                bg, bk = (list(map(_SMALL.__getitem__, tok[i::8])) for i in (4, 5))
                col = list(map(_SMALL_HEX.__getitem__, tok[7::8]))
            except KeyError:
                ch, rk, bg, bk = (list(map(int, tok[i::8])) for i in (2, 3, 4, 5))
                col = list(map(int, tok[7::8], repeat(16)))
                if min(ch) < 0 or min(rk) < 0 or min(bg) < -1 or min(bk) < -1 or min(col) < -1:
                    return None
        except ValueError:
            return None
        if min(clk) < 0 or min(row) < -1:
            return None
        fields = zip(clk, cs, ch, rk, bg, bk, row, col, strict=True)
        return list(map(_NEW, repeat(Command), fields))

    def _slow(self, lines: list[str], first: int) -> Iterator[tuple[list[int], list[Command]]]:
        """Parse line by line; on an error, deliver the good commands before it, then raise."""
        cmds: list[Command] = []
        nos: list[int] = []
        for i, line in enumerate(lines):
            self.line_no = first + i
            try:
                cmd = self._parse_line(line)
            except CommandTraceError:
                if cmds:
                    yield nos, cmds
                raise
            if cmd is not None:
                cmds.append(cmd)
                nos.append(first + i)
        self.line_no = first + len(lines) - 1
        if cmds:
            yield nos, cmds

    def _error(self, message: str) -> CommandTraceError:
        return CommandTraceError(self.path, self.line_no, message)

    def _parse_line(self, line: str) -> Command | None:
        if "#" in line:
            line = line[: line.index("#")]
        parts = line.split()
        if not parts:
            return None
        if len(parts) != 8:
            raise self._error(
                f"expected 8 fields '<clk> <cmd> <channel> <rank> <bankgroup> <bank> "
                f"<row> <col>', got {len(parts)}: {clip_repr(line.strip())}"
            )
        c = self._names.get(parts[1])
        if c is None:
            c = parse_command_name(parts[1])
            if c is None:
                raise self._error(self._unknown(parts[1]))
            self._names[parts[1]] = c
        try:
            clk = int(parts[0])
            ch = int(parts[2])
            rk = int(parts[3])
            bg = int(parts[4])
            bk = int(parts[5])
            row = int(parts[6], 16)
            col = int(parts[7], 16)
        except ValueError:
            raise self._error(self._bad_number(parts)) from None
        if ch == -1:
            ch = self.file_channel()
        if clk < 0 or ch < 0 or rk < 0 or bg < -1 or bk < -1 or row < -1 or col < -1:
            raise self._error(self._out_of_range(clk, ch, rk, bg, bk, row, col))
        return _NEW(Command, (clk, c, ch, rk, bg, bk, row, col))

    @staticmethod
    def _unknown(name: str) -> str:
        known = ", ".join(n for c, n in TRACE_NAME.items() if c < Cmd.PIM_RD)
        if name == "refresh_bank":
            return "per-bank refresh (refresh_bank) is not a DDR4 command; DDR4 refreshes all banks"
        return (f"unknown command {clip_repr(name)}; known: {known}, "
                "PIM_<RD|LD|WR|ST|OP|SET|MRS|CFG...>")

    @staticmethod
    def _bad_number(parts: list[str]) -> str:
        labels = ("clk", "", "channel", "rank", "bankgroup", "bank", "row", "col")
        for i, label in enumerate(labels):
            if not label:
                continue
            try:
                int(parts[i], 16 if i >= 6 else 10)
            except ValueError:
                kind = "a hex number (0x1f)" if i >= 6 else "a decimal integer"
                return f"{label} must be {kind}, got {clip_repr(parts[i])}"
        return "malformed number"  # pragma: no cover - every field parsed

    @staticmethod
    def _out_of_range(*values: int) -> str:
        labels = ("clk", "channel", "rank", "bankgroup", "bank", "row", "col")
        for label, value in zip(labels, values, strict=True):
            low = 0 if label in ("clk", "rank") else -1
            if value < low:
                return f"{label} must be >= {low}, got {value}"
        return "field out of range"  # pragma: no cover


def read_command_trace(path: str | Path) -> Iterator[Command]:
    """Stream the commands of a DRAMsim3-style command trace (plain or ``.gz``).

    Raises :class:`CommandTraceError` (file and line) for malformed lines, unknown commands and
    negative fields (``-1`` is allowed for bank group, bank, row and column, which REF and PIM
    register commands do not use).  Whether fields fit a configuration is the consumer's check.
    """
    return iter(CommandTraceReader(path))


#: First line of every command trace gradpimsim writes: what marks the file as its own
#: (:mod:`gradpimsim.io_safety`), and a comment to every reader of the format.
TRACE_HEADER = "gradpimsim command trace"


class CommandTraceWriter:
    """Write commands as trace lines, buffered; a context manager.  ``.gz`` paths are compressed.

    ``fd``: write to this already created file (an exclusive temporary file) instead of opening
    ``path``; ``path`` then only chooses compression.
    """

    def __init__(self, path: str | Path, *, header: str | None = None,
                 fd: int | None = None) -> None:
        self.path = Path(path)
        self._fh: IO[str] | None = (_open_text(self.path, "w") if fd is None
                                    else _open_fd(fd, self.path))
        self._buf: list[str] = []
        self.count = 0
        if header:
            for line in header.splitlines():
                self._fh.write(f"# {line}\n")

    def write(self, cmd: Command) -> None:
        """Append one command."""
        self._buf.append(cmd.trace_line())
        self.count += 1
        if len(self._buf) >= _BUFFER_LINES:
            self._flush_buffer()

    def write_many(self, cmds: Iterable[Command]) -> None:
        """Append many commands."""
        for cmd in cmds:
            self.write(cmd)

    def _flush_buffer(self) -> None:
        if self._fh is None:
            raise ValueError(f"{self.path}: writer is closed")
        if self._buf:
            self._buf.append("")
            self._fh.write("\n".join(self._buf))
            self._buf.clear()

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._fh is not None:
            self._flush_buffer()
            self._fh.close()
            self._fh = None

    def __enter__(self) -> CommandTraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class CommandTraceFile:
    """A simulator sink factory that streams every channel's commands to one trace file.

    Unlike a writer, it can be pickled before it is used: nothing is opened until the simulator
    asks for a channel's sink.  That lets ``compare(jobs=2)`` send it to the worker process that
    simulates the run; the worker closes it when the run ends.  Commands go to a temporary file
    beside ``path`` (``.partial.<random token>.<name>``, created exclusively: see
    :mod:`gradpimsim.io_safety`), renamed to ``path`` by :meth:`close`, so a reader never mistakes
    half a trace for a whole one.  The token is chosen here, so the process that made this object
    can :meth:`discard` what a worker left behind when the run failed.
    """

    def __init__(self, path: str | Path, header: str = TRACE_HEADER) -> None:
        from gradpimsim.io_safety import partial_name

        self.path = Path(path)
        self.header = header
        self.token = secrets.token_hex(8)
        self.partial_path = partial_name(self.path, self.token)
        self._writer: CommandTraceWriter | None = None

    def __call__(self, channel: int) -> Callable[[Command], None]:
        """The sink for ``channel`` (every channel writes to the same file, in issue order)."""
        if self._writer is None:
            from gradpimsim.io_safety import create_partial

            fd, _ = create_partial(self.path, self.token)
            self._writer = CommandTraceWriter(self.partial_path, header=self.header, fd=fd)
        return self._writer.write

    def close(self) -> bool:
        """Finish the file and give it its name; False if this copy never wrote anything."""
        if self._writer is None:
            return False
        from gradpimsim.io_safety import commit

        self._writer.close()
        self._writer = None
        commit(self.partial_path, self.path)
        return True

    def discard(self) -> None:
        """Drop an unfinished file (a failed or interrupted run), in this process or a worker's."""
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()
            self._writer = None
        with contextlib.suppress(OSError):
            os.unlink(self.partial_path)

    def __getstate__(self) -> dict[str, Any]:
        if self._writer is not None:  # an open file cannot follow the object elsewhere
            raise TypeError(f"{self.path}: cannot pickle a command trace file being written")
        return {"path": self.path, "header": self.header, "token": self.token}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from gradpimsim.io_safety import partial_name

        self.path = state["path"]
        self.header = state.get("header", TRACE_HEADER)
        self.token = state["token"]
        self.partial_path = partial_name(self.path, self.token)
        self._writer = None

"""What the command line tells a user when something goes wrong, and how.

Every subcommand runs inside one error boundary (:func:`gradpimsim.cli.main`).  An exception that
the user's input can cause (a bad file, option, value, path or size) becomes *one* line on stderr,
``error: <what>`` with the file and line when there is one and the fix, and exit code 2.  Any
other exception is a bug in gradpimsim: it is reported as such on one line, asking for a report,
with exit code 3 (``GRADPIMSIM_DEBUG=1`` shows the traceback instead).

The classes below are the user errors that have no better home; the modules that parse inputs
raise their own (``ConfigError``, ``TraceError``, ``GraphError``...), which
:func:`gradpimsim.cli.user_error_types` lists.  The text of every message is escaped for rich
markup (a message about ``[section]`` keeps its brackets), never wrapped (a log or a pipe gets
one line), and cut to :data:`MAX_MESSAGE` characters; :func:`clip` cuts echoed input (a bad
line) much shorter.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import TextIO

#: Exit codes of every subcommand.
EXIT_OK, EXIT_FAILED, EXIT_USER, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: Characters of echoed input (a rejected line, a value) kept in a message.
MAX_ECHO = 120
#: Characters of a whole message printed (a last resort: sources clip what they echo).
MAX_MESSAGE = 2000

REPORT_HINT = ("this is a bug in gradpimsim, not in your input: please report it with the "
               "command line and input files (GRADPIMSIM_DEBUG=1 shows the traceback)")


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2."""


class OutputError(UserError):
    """An output path cannot or must not be written (checked before any simulation starts)."""


class InputError(UserError):
    """An input file cannot be read as the text or JSON it should be (file and line named)."""


class BoundsError(UserError):
    """The input asks for more memory or work than can be done; the message gives the estimate."""


def clip(text: object, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    s = str(text)
    if len(s) <= limit:
        return s
    return f"{s[:limit]}... ({len(s) - limit:,} more characters)"


def clip_repr(text: object, limit: int = MAX_ECHO, total: int | None = None) -> str:
    """``repr`` of echoed input, cut like :func:`clip` (so quotes show where it starts).
    ``total``: the length of the whole input when ``text`` is already a prefix of it."""
    s = text if isinstance(text, str) else str(text)
    n = max(len(s), total or 0)
    if n <= limit:
        return repr(s)
    return f"{s[:limit]!r}... ({n - limit:,} more characters)"


def one_line(message: str) -> str:
    """The message on one line and at most :data:`MAX_MESSAGE` characters."""
    flat = " ".join(message.replace("\r", " ").split("\n"))
    return clip(flat, MAX_MESSAGE)


def os_error_message(exc: OSError) -> str:
    """A file-system error as ``<path>: <reason>; <fix>`` (no errno numbers, no Python repr)."""
    path = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    fixes = {
        errno.ENOENT: "check the path",
        errno.EISDIR: "give a file, not a directory",
        errno.ENOTDIR: "a part of the path is a file, not a directory",
        errno.EACCES: "check its permissions",
        errno.EPERM: "check its permissions",
        errno.EROFS: "the file system is read-only; choose another place",
        errno.ENOSPC: "the disk is full; free space or choose another place",
        errno.ENAMETOOLONG: "use a shorter path",
        errno.ELOOP: "the path has a symbolic-link loop",
    }
    fix = fixes.get(exc.errno or 0, "")
    where = f"{clip(os.fsdecode(path), 300)}: " if path != "" else ""
    return f"{where}{reason}" + (f"; {fix}" if fix else "")


def unicode_message(exc: UnicodeDecodeError, source: str = "") -> str:
    where = f"{source}: " if source else ""
    return (f"{where}not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8")


def print_error(message: str, *, stream: TextIO | None = None, internal: bool = False) -> None:
    """``error: message`` on stderr: escaped for rich, one line, never wrapped."""
    from rich.console import Console
    from rich.markup import escape

    text = escape(one_line(message))
    console = Console(file=stream or sys.stderr, soft_wrap=True, highlight=False)
    label = "[bold red]internal error:[/]" if internal else "[bold red]error:[/]"
    if internal and text.startswith("internal error: "):
        text = text[len("internal error: "):]
    console.print(f"{label} {text}", soft_wrap=True, highlight=False, markup=True)

"""Errors that reach the user: each names the file and where in it the problem is."""
from __future__ import annotations


class StreamhogError(Exception):
    """Base class of every error streamhog raises on purpose."""


class DataFormatError(StreamhogError, ValueError):
    """Bad input data: names the file, the place in it (line, row group, block) and the problem.

    ``str(err)`` reads ``"<path>:<where>: <problem>"``, e.g.
    ``"a9a.txt: line 17: index 0 is not allowed with --index-base 1"``.
    """

    def __init__(self, path, problem: str, *, line: int | None = None, where: str | None = None):
        self.path = str(path)
        self.line = line
        self.where = where if where is not None else (f"line {line}" if line is not None else None)
        # One line, always: a library's message quoted in ``problem`` may hold line breaks
        # (pyarrow's thrift errors do; found by tests/test_fuzz.py).
        self.problem = problem = " ".join(part.strip() for part in str(problem).splitlines() if part.strip())
        location = f"{self.path}: {self.where}" if self.where else self.path
        super().__init__(f"{location}: {problem}")


class OutputExistsError(StreamhogError, FileExistsError):
    """The destination exists and the user did not ask to overwrite it."""


class OutputError(StreamhogError, OSError):
    """An output cannot be written: its directory is not writable, or the disk filled up
    (the partial output is removed). Names the path."""


class UsageError(StreamhogError, ValueError):
    """An argument that cannot work as given (e.g. an output name of the wrong kind)."""

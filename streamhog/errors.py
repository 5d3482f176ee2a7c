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
        self.problem = problem
        location = f"{self.path}: {self.where}" if self.where else self.path
        super().__init__(f"{location}: {problem}")


class OptionError(StreamhogError, ValueError):
    """An option with a value it cannot take (``index_base=2``, ``rows_per_block=0``)."""


class DataTypeError(StreamhogError, TypeError):
    """Data of a type streamhog cannot read (e.g. a list of strings where numbers belong);
    names the argument and the type."""


class OutputExistsError(StreamhogError, FileExistsError):
    """The destination exists and the user did not ask to overwrite it."""

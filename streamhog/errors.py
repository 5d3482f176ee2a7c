"""Every error streamhog raises on purpose: each names the file and where in it the problem
is, or the option at fault. The command line catches these (and only these, with the OS's
file errors) and prints one line; anything else is a bug and shows its traceback."""
from __future__ import annotations


class StreamhogError(Exception):
    """Base class of every error streamhog raises on purpose."""


class ConfigError(StreamhogError, ValueError):
    """An option, or a combination of options, that cannot be used: names the option."""


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


class DataTypeError(StreamhogError, TypeError):
    """Data of a type streamhog cannot read (e.g. a list of strings where numbers belong);
    names the argument and the type."""


class ReaderError(StreamhogError):
    """A reader thread failed with an unexpected (non-streamhog) exception.

    The original exception is ``__cause__``; ``block`` is ``None`` when opening
    the reader failed.
    """

    def __init__(self, path, block: int | None, cause: BaseException):
        self.path = str(path)
        self.block = block
        where = f"block {block}" if block is not None else "opening reader"
        super().__init__(f"{self.path}: {where}: reader failed: {type(cause).__name__}: {cause}")
        self.__cause__ = cause


class OutputExistsError(StreamhogError, FileExistsError):
    """The destination exists and the user did not ask to overwrite it."""


class ModelError(StreamhogError):
    """A model directory that is missing, incomplete or of another version."""


class IncompatibleDataError(StreamhogError, ValueError):
    """The dataset does not fit the model (more features than the model has weights)."""


class CheckpointError(StreamhogError):
    """No usable checkpoint record."""


class TrainingError(StreamhogError):
    """Training stopped: labels that do not fit the loss, divergence, or bad options."""


class DivergenceError(TrainingError):
    """A margin became NaN or infinite: the step size is too large for the data."""


class DiskSpaceError(StreamhogError):
    """The disk holding a model has no room left for what a run must write: it stopped (or
    did not start) with a checkpoint while there was room."""


class Interrupted(StreamhogError):
    """A signal stopped the command; the CLI exits with 128 + ``signum``."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class TrainingInterrupted(Interrupted):
    """SIGINT/SIGTERM: the batches in flight were finished and a checkpoint written."""


class MissingDependencyError(StreamhogError, ImportError):
    """An optional package a feature needs is not installed: names the package and the extra
    that installs it (``pip install 'streamhog[plot]'``)."""


class ModelTooLargeError(StreamhogError, TypeError):
    """A model too large to travel inside a pickle (``joblib.dump`` of a fitted estimator):
    says to keep the model directory instead. A TypeError, as Python's own "cannot pickle"
    errors are (the package imports no pickle module: its files are .npy + JSON)."""


class OutputError(StreamhogError, OSError):
    """An output cannot be written: its directory is not writable, or the disk filled up
    (the partial output is removed). Names the path."""


class UsageError(ConfigError):
    """An argument that cannot work as given (e.g. an output name of the wrong kind)."""


class LabelError(StreamhogError, ValueError):
    """Labels that the loss (of a run, or of a model being scored) cannot take."""


class ClusterError(StreamhogError):
    """A cluster run that cannot go on: Dask missing, no workers, workers lost more often
    than allowed, or an error a worker raised (its message kept, naming the file and block)."""


class WorkerLost(ClusterError):
    """A worker left the cluster (killed, crashed) in the middle of a round."""

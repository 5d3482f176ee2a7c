"""``streamhog convert SRC DST --input-format ratings``: rating text → interaction Parquet.

Streams with bounded memory (a few parse blocks and one row group); the output is written
under a temporary name and renamed on success, so a bad line (file, line, problem; a
non-zero exit) leaves no output behind, as for LIBSVM.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .._fs.atomic import atomic_output, check_destination
from .._fs.sparse_files import apparent_size
from .format import DEFAULT_ROWS_PER_GROUP, InteractionWriter
from .parse import RatingsReader


def _interactions_problem(path: Path) -> str | None:
    """None when ``path`` is an interaction file that ``convert --overwrite`` may replace."""
    from . import is_interaction_file

    return None if Path(path).is_file() and is_interaction_file(path) else "it is not a streamhog interaction file"


@dataclass
class RatingsReport:
    """What a ratings conversion wrote (``streamhog convert`` prints its summary)."""

    src: str
    dst: str
    n_rows: int = 0
    n_groups: int = 0
    n_users: int = 0  # the largest user / item id + 1
    n_items: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    n_skipped: int = 0
    skipped: list = field(default_factory=list)  # (line, problem) of the first few
    pairs: bool = False  # (user, item) pairs without ratings

    def summary(self) -> str:
        rate = self.bytes_in / self.seconds / 1e6 if self.seconds and self.bytes_in else 0.0
        lines = [f"wrote {self.dst}: {self.n_rows:,} {'(user, item) pairs, no ratings' if self.pairs else 'ratings'}, user ids < {self.n_users:,}, item ids < "
                 f"{self.n_items:,}, {self.n_groups} row group(s), {self.bytes_out / 1e6:.1f} MB in "
                 f"{self.seconds:.2f} s" + (f" ({rate:.2g} MB/s of input)" if rate else "")]
        if self.n_skipped:
            lines.append(f"skipped {self.n_skipped:,} invalid line(s); first: "
                         + ", ".join(f"line {ln}" for ln, _ in self.skipped))
            lines += [f"  line {ln}: {msg}" for ln, msg in self.skipped]
        return "\n".join(lines)


def convert_ratings(src, dst, report=None, *, rows_per_group: int | None = None, compression: str = "none",
                    skip_invalid: bool = False, overwrite: bool = False, threads: int = 2, user_column=None,
                    item_column=None, rating_column=None, progress=False):
    """Convert rating text ``src`` into the interaction file ``dst``; fill and return
    ``report`` (a :class:`RatingsReport`, made here when None): rows written, user and item
    id ranges, bytes, skipped lines."""
    report = report if report is not None else RatingsReport(str(src), str(dst))
    dst = check_destination(dst, overwrite=overwrite, replaceable=_interactions_problem)
    if str(src) != "-" and Path(src).resolve() == dst.resolve():
        raise ConfigError(f"{dst}: source and destination are the same")
    start = time.perf_counter()
    with atomic_output(dst, overwrite=overwrite, replaceable=_interactions_problem) as tmp:
        reader = RatingsReader(src, user_column=user_column, item_column=item_column, rating_column=rating_column,
                               skip_invalid=skip_invalid, threads=threads)
        writer = None

        def open_writer():  # once the layout is known: a file of pairs has no rating column
            return InteractionWriter(tmp, rows_per_group=rows_per_group or DEFAULT_ROWS_PER_GROUP,
                                     compression=compression,
                                     has_ratings=reader.layout is None or reader.layout.has_ratings)
        try:
            total = Path(src).stat().st_size if str(src) != "-" else None
            from tqdm import tqdm

            # progress None: a bar when stderr is a terminal (as the sparse converter's)
            show = progress if progress is not None else sys.stderr.isatty()
            with tqdm(total=total, unit="B", unit_scale=True, disable=not show, leave=False) as bar:
                for users, items, ratings, _ in reader:
                    writer = writer or open_writer()
                    writer.write(users, items, ratings if writer.has_ratings else None)
                    bar.update(reader.bytes_in - bar.n)
            writer = writer or open_writer()
            writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            reader.close()
    report.seconds = time.perf_counter() - start
    report.n_rows, report.n_groups, report.pairs = writer.n_rows, writer.n_groups, not writer.has_ratings
    report.n_users, report.n_items = writer.max_user + 1, writer.max_item + 1
    report.bytes_in, report.bytes_out = reader.bytes_in, apparent_size(dst)
    report.n_skipped, report.skipped = reader.n_skipped, list(reader.skipped)
    return report

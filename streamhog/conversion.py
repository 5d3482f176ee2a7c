"""One converter behind ``streamhog convert`` and ``tools/convert.py``.

LIBSVM text (plain, .gz, .bz2, .xz, or standard input) → Parquet or Zarr, and Parquet ↔ Zarr.
It streams: memory is bounded by a few parse blocks and one output row group, never by
the file size. The output is written under a temporary name and renamed on success, so a
bad line leaves no partial output behind.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_output, check_destination
from .formats import create_writer, detect_format, format_from_suffix, open_dataset
from .formats.spec import DEFAULT_COMPRESSION, DEFAULT_ROWS_PER_GROUP, MAX_INDEX
from .sparse_files import apparent_size


@dataclass
class ConvertReport:
    src: str
    dst: str
    input_format: str
    output_format: str
    n_rows: int = 0
    nnz: int = 0
    n_features: int = 0
    n_groups: int = 0
    has_values: bool = True
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    n_skipped: int = 0
    skipped: list = field(default_factory=list)  # (line, problem) of the first few

    def summary(self) -> str:
        rate = self.bytes_in / self.seconds / 1e6 if self.seconds and self.bytes_in else 0.0
        lines = [f"wrote {self.dst}: {self.n_rows:,} rows, {self.nnz:,} nnz, {self.n_features:,} features, "
                 f"{self.n_groups} {'row group' if self.output_format == 'parquet' else 'block'}(s), {'with' if self.has_values else 'without'} values column, "
                 f"{self.bytes_out / 1e6:.1f} MB in {self.seconds:.2f} s"
                 + (f" ({rate:.0f} MB/s of input)" if rate else "")]
        if self.n_skipped:
            first = ", ".join(f"line {ln}" for ln, _ in self.skipped)
            lines.append(f"skipped {self.n_skipped:,} invalid line(s); first: {first}")
            lines += [f"  line {ln}: {msg}" for ln, msg in self.skipped]
        return "\n".join(lines)


def _progress(total_bytes: int | None, enabled: bool | None, unit: str):
    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total_bytes, unit=unit, unit_scale=True, disable=not enabled, leave=False, file=sys.stderr)


def convert(src, dst, *, output_format: str | None = None, input_format: str = "auto",
            index_base="1", n_features: int | None = None, rows_per_group: int | None = None,
            compression: str = DEFAULT_COMPRESSION, values: str = "auto", skip_invalid: bool = False,
            overwrite: bool = False, threads: int = 2, progress: bool | None = False) -> ConvertReport:
    """Convert ``src`` into the sparse ``dst`` dataset and return what was written.

    ``output_format`` defaults to DST's suffix (``.parquet`` / ``.zarr``). ``input_format``
    'auto' means Parquet/Zarr when SRC is one, LIBSVM text otherwise. Raises
    :class:`~streamhog.errors.DataFormatError` (file, line, problem) on bad input, leaving
    no output behind.
    """
    output_format = output_format or format_from_suffix(dst)
    if output_format not in ("parquet", "zarr"):
        raise ValueError(f"{dst}: cannot tell the output format from the name; use a .parquet or .zarr "
                         "suffix, or --format parquet|zarr")
    if input_format == "auto":
        input_format = detect_format(src)
    rows_per_group = rows_per_group or DEFAULT_ROWS_PER_GROUP[output_format]
    if n_features is not None and not 0 <= n_features <= MAX_INDEX + 1:
        raise ValueError(f"n_features must be between 0 and 2^32, got {n_features}")
    dst = check_destination(dst, overwrite=overwrite)
    if str(src) != "-" and Path(src).resolve() == dst.resolve():
        raise ValueError(f"{dst}: source and destination are the same")
    report = ConvertReport(str(src), str(dst), input_format, output_format)
    start = time.perf_counter()
    with atomic_output(dst, overwrite=overwrite) as tmp:
        if input_format == "libsvm":
            _from_libsvm(src, tmp, report, output_format, index_base=index_base, n_features=n_features,
                         rows_per_group=rows_per_group, compression=compression, values=values,
                         skip_invalid=skip_invalid, threads=threads, progress=progress)
        else:
            _from_dataset(src, tmp, report, output_format, n_features=n_features, rows_per_group=rows_per_group,
                          compression=compression, values=values, threads=threads, progress=progress)
    report.seconds = time.perf_counter() - start
    report.bytes_out = apparent_size(dst)
    return report


def _finish(writer, report: ConvertReport, n_features) -> None:
    writer.close(n_features)
    report.n_rows, report.nnz, report.n_groups = writer.n_rows, writer.nnz, writer.n_groups
    report.n_features, report.has_values = writer.n_features, bool(writer.with_values)


def _from_libsvm(src, tmp, report, output_format, *, index_base, n_features, rows_per_group, compression,
                 values, skip_invalid, threads, progress) -> None:
    from .formats.libsvm import LibsvmReader

    base = index_base if index_base == "auto" else int(index_base)
    reader = LibsvmReader(src, index_base=base, n_features=n_features, skip_invalid=skip_invalid, threads=threads)
    total = Path(src).stat().st_size if str(src) != "-" else None
    writer = create_writer(output_format, tmp, rows_per_group=rows_per_group, compression=compression,
                           values=values, has_weights=False, n_features=n_features)
    try:
        with _progress(total, progress, "B") as bar:
            done = 0
            for batch in reader:
                writer.write(batch)
                bar.update(reader.bytes_in - done)
                done = reader.bytes_in
        _finish(writer, report, n_features)
    except BaseException:
        writer.abort()
        raise
    finally:
        reader.close()
    report.bytes_in = reader.bytes_in
    report.n_skipped, report.skipped = reader.n_skipped, list(reader.skipped)


def _from_dataset(src, tmp, report, output_format, *, n_features, rows_per_group, compression, values,
                  threads, progress) -> None:
    from .stream import BatchStream, block_order

    ds = open_dataset(src)
    if n_features is not None and n_features < ds.n_features:
        raise ValueError(f"{src}: --n-features {n_features} is below the dataset's n_features {ds.n_features}")
    writer = create_writer(output_format, tmp, rows_per_group=rows_per_group, compression=compression,
                           values=values, has_weights=ds.has_weights, n_features=n_features)
    order = block_order(ds.n_blocks, epoch=0, seed=0, shuffle=False)
    try:
        with _progress(ds.n_rows, progress, "rows") as bar, \
                BatchStream(ds, order, readers=max(1, threads), capacity=max(2, 2 * threads), ordered=True) as stream:
            for batch in stream:
                writer.write(batch)
                bar.update(batch.n_rows)
        _finish(writer, report, n_features if n_features is not None else ds.n_features)
    except BaseException:
        writer.abort()
        raise
    report.bytes_in = apparent_size(Path(src))

"""One converter behind ``streamhog convert`` and ``tools/convert.py``.

LIBSVM text (plain, .gz, .bz2, .xz, or standard input) → Parquet or Zarr, and Parquet ↔ Zarr;
raw click logs (Criteo TSV, CSV with a header) → Parquet or Zarr with hashed features.
``hash_bits`` hashes LIBSVM / Parquet / Zarr ids into 2^bits slots (docs/formats.md).
It streams: memory is bounded by a few parse blocks and one output row group, never by
the file size. The output is written under a temporary name and renamed on success, so a
bad line leaves no partial output behind.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np
from pathlib import Path

from .outputs import check_destination, output
from ..errors import ConfigError, DataFormatError
from .formats import create_writer, detect_format, format_from_suffix, open_dataset
from .formats.spec import DEFAULT_COMPRESSION, DEFAULT_PARQUET_LAYOUT, DEFAULT_ROWS_PER_GROUP, MAX_INDEX
from .hashing import DEFAULT_HASH_BITS, check_bits, hash_batch
from .._fs.sparse_files import apparent_size
from .outputs import dataset_problem
from .signals import sigterm_raises

INPUT_FORMATS = ("auto", "libsvm", "parquet", "zarr", "criteo", "csv")
CLICK_LOG_FORMATS = ("criteo", "csv")


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
    hash_bits: int | None = None  # ids hashed into 2**hash_bits slots

    def summary(self) -> str:
        rate = self.bytes_in / self.seconds / 1e6 if self.seconds and self.bytes_in else 0.0
        hashed = f" (hashed, 2^{self.hash_bits})" if self.hash_bits is not None else ""
        lines = [f"wrote {self.dst}: {self.n_rows:,} rows, {self.nnz:,} nnz, {self.n_features:,} features{hashed}, "
                 f"{self.n_groups} {'row group' if self.output_format == 'parquet' else 'block'}(s), {'with' if self.has_values else 'without'} values column, "
                 f"{self.bytes_out / 1e6:.1f} MB in {self.seconds:.2f} s"
                 + (f" ({rate:.0f} MB/s of input)" if rate >= 100 else f" ({rate:.2g} MB/s of input)" if rate else "")]
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
            index_base=None, n_features: int | None = None, rows_per_group: int | None = None,
            compression: str = DEFAULT_COMPRESSION, values: str = "auto", layout: str | None = None,
            skip_invalid: bool = False, overwrite: bool = False, threads: int = 2, progress: bool | None = False,
            hash_bits: int | None = None, label_column: str | None = None, categorical=None, numeric=None,
            ignore=None, indices_column: str | None = None, values_column: str | None = None,
            weight_column: str | None = None, fix_rows: bool = False) -> ConvertReport:
    """Convert ``src`` into the sparse ``dst`` dataset and return what was written.

    ``output_format`` defaults to DST's suffix (``.parquet`` / ``.zarr``). ``input_format``
    'auto' means Parquet/Zarr when SRC is one, LIBSVM text otherwise; 'criteo' and 'csv' are
    raw click logs (always hashed, ``hash_bits`` default 20; ``label_column``, ``categorical``,
    ``numeric``, ``ignore`` describe CSV columns; ``label_column``, ``indices_column``,
    ``values_column``, ``weight_column``, ``index_base`` (default 0) and ``fix_rows`` read
    Parquet written by other tools, see formats/columns.py). ``index_base`` of LIBSVM text is
    1 by default. ``hash_bits`` on LIBSVM/Parquet/Zarr input
    hashes the ids into ``2**hash_bits`` slots, merging collisions. Raises
    :class:`~streamhog.errors.DataFormatError` (file, line, problem) on bad input, leaving
    no output behind.
    """
    output_format = output_format or format_from_suffix(dst)
    if output_format not in ("parquet", "zarr"):
        raise ConfigError(f"{dst}: cannot tell the output format from the name; use a .parquet or .zarr "
                         "suffix, or --format parquet|zarr")
    if input_format == "auto":
        input_format = detect_format(src)
    if input_format not in INPUT_FORMATS[1:]:
        raise ConfigError(f"unknown input format {input_format!r}; choose one of {', '.join(INPUT_FORMATS)}")
    if input_format != "csv" and (categorical is not None or numeric is not None or ignore is not None):
        raise ConfigError("--categorical, --numeric and --ignore apply to --input-format csv only")
    columns = dict(label_column=label_column, indices_column=indices_column, values_column=values_column,
                   weight_column=weight_column, fix_rows=fix_rows)
    if input_format not in ("csv", "parquet") and label_column is not None:
        raise ConfigError("--label-column, --categorical, --numeric and --ignore apply to --input-format csv only "
                         "(--label-column also to Parquet input)")
    if input_format != "parquet" and (indices_column or values_column or weight_column or fix_rows):
        raise ConfigError("--indices-column, --values-column, --weight-column and --fix-rows apply to Parquet input only")
    if input_format == "parquet":
        if str(index_base) not in ("None", "0", "1"):
            raise ConfigError(f"--index-base of Parquet input is 0 or 1, got {index_base}")
        columns["index_base"] = int(index_base or 0)
    elif input_format == "zarr" and index_base is not None:
        raise ConfigError("--index-base does not apply to Zarr input (its ids are 0-based)")
    index_base = "1" if index_base is None else index_base
    if input_format == "csv" and not label_column:
        raise ConfigError("--input-format csv needs --label-column NAME")
    if input_format in CLICK_LOG_FORMATS and hash_bits is None:
        hash_bits = DEFAULT_HASH_BITS
    if hash_bits is not None:
        hash_bits = check_bits(hash_bits)
        if n_features is not None and n_features != 1 << hash_bits:
            raise ConfigError(f"--n-features {n_features} contradicts --hash-bits {hash_bits}: hashed ids "
                             f"have n_features = 2^{hash_bits} = {1 << hash_bits:,}")
    if layout is not None and output_format != "parquet":
        raise ConfigError(f"--layout applies to Parquet output only, not {output_format}")
    rows_per_group = rows_per_group or DEFAULT_ROWS_PER_GROUP[output_format]
    if n_features is not None and not 0 <= n_features <= MAX_INDEX + 1:
        raise ConfigError(f"n_features must be between 0 and 2^32, got {n_features}")
    dst = check_destination(dst, overwrite=overwrite, replaceable=dataset_problem)
    if str(src) != "-" and Path(src).resolve() == dst.resolve():
        raise ConfigError(f"{dst}: source and destination are the same")
    report = ConvertReport(str(src), str(dst), input_format, output_format, hash_bits=hash_bits)
    options = dict(rows_per_group=rows_per_group, compression=compression, values=values)
    if output_format == "parquet":
        options["layout"] = layout or DEFAULT_PARQUET_LAYOUT
    start = time.perf_counter()
    with sigterm_raises("the partial output was removed"), \
            output(dst, overwrite=overwrite, replaceable=dataset_problem) as tmp:
        if input_format in ("parquet", "zarr"):
            _from_dataset(src, tmp, report, output_format, n_features=n_features, hash_bits=hash_bits,
                          threads=threads, progress=progress, columns=columns if input_format == "parquet" else {},
                          **options)
        else:
            reader = _text_reader(src, input_format, index_base=index_base, n_features=n_features,
                                  hash_bits=hash_bits, skip_invalid=skip_invalid, threads=threads,
                                  csv_columns=dict(label_column=label_column, categorical=categorical,
                                                   numeric=numeric, ignore=ignore))
            hash_ids = hash_bits is not None and input_format == "libsvm"  # click-log readers hash already
            _from_reader(reader, src, tmp, report, output_format, hash_bits=hash_bits, hash_ids=hash_ids,
                         n_features=n_features if hash_bits is None else 1 << hash_bits, progress=progress,
                         **options)
    report.seconds = time.perf_counter() - start
    report.bytes_out = apparent_size(dst)
    return report


def _hashed(batch, hash_bits, hash_ids: bool, values: str, counts: bool = False):
    """``batch`` with its ids hashed when ``hash_ids`` (collisions in a row summed). With
    ``values='drop'`` a hashed row of binary features becomes binary again: ids that collide
    count once (presence, as one-hot data means), so no values column is needed. Click-log
    readers hash already (``counts``: their values are only such collision counts). Real
    values are refused before hashing could sum them into ones."""
    if hash_bits is None:
        return batch
    if values == "drop" and not (counts or batch.values is None or bool(np.all(batch.values == 1.0))):
        raise DataFormatError(batch.source, "values other than 1.0 cannot be dropped (values='drop')")
    if hash_ids:
        batch = hash_batch(batch, hash_bits)
    return replace(batch, values=None) if values == "drop" else batch


def _finish(writer, report: ConvertReport, n_features) -> None:
    writer.close(n_features)
    report.n_rows, report.nnz, report.n_groups = writer.n_rows, writer.nnz, writer.n_groups
    report.n_features, report.has_values = writer.n_features, bool(writer.with_values)


def _text_reader(src, input_format, *, index_base, n_features, hash_bits, skip_invalid, threads, csv_columns):
    """The streaming reader of a text input: LIBSVM, Criteo or CSV."""
    if input_format == "criteo":
        from .formats.criteo import CriteoReader

        return CriteoReader(src, hash_bits=hash_bits, skip_invalid=skip_invalid, threads=threads)
    if input_format == "csv":
        from .formats.csv import CsvReader

        return CsvReader(src, hash_bits=hash_bits, skip_invalid=skip_invalid, threads=threads, **csv_columns)
    from .formats.libsvm import LibsvmReader

    base = index_base if index_base == "auto" else int(index_base)
    # Hashing maps any uint32 id into range: --n-features bounds only unhashed ids.
    return LibsvmReader(src, index_base=base, n_features=n_features if hash_bits is None else None,
                        skip_invalid=skip_invalid, threads=threads)


def _from_reader(reader, src, tmp, report, output_format, *, n_features, hash_bits, hash_ids, progress,
                 **options) -> None:
    """Write what a streaming text reader yields (LibsvmReader or a click-log reader)."""
    try:
        total = Path(src).stat().st_size if str(src) != "-" else None
        writer = create_writer(output_format, tmp, has_weights=False, n_features=n_features, hash_bits=hash_bits,
                               **options)
    except BaseException:
        reader.close()
        raise
    try:
        with _progress(total, progress, "B") as bar:
            done = 0
            for batch in reader:
                writer.write(_hashed(batch, hash_bits, hash_ids, options["values"], counts=not hash_ids))
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


def _from_dataset(src, tmp, report, output_format, *, n_features, hash_bits, threads, progress, columns,
                  **options) -> None:
    from .stream import BatchStream, block_order

    # Data without n_features in its metadata (another tool's Parquet) takes --n-features as its own.
    ds = open_dataset(src, n_features=n_features if columns else None, **columns)
    rehash = hash_bits is not None  # hashed again even if already hashed: the user asked
    if rehash:
        n_features = 1 << hash_bits
    elif n_features is not None and n_features < ds.n_features:
        raise ConfigError(f"{src}: --n-features {n_features} is below the dataset's n_features {ds.n_features}")
    elif ds.hash_bits is not None and n_features in (None, ds.n_features):
        report.hash_bits = hash_bits = ds.hash_bits  # still the same hashed ids: keep saying so
    writer = create_writer(output_format, tmp, has_weights=ds.has_weights, n_features=n_features, hash_bits=hash_bits,
                           **options)
    order = block_order(ds.n_blocks, epoch=0, seed=0, shuffle=False)
    try:
        with _progress(ds.n_rows, progress, "rows") as bar, \
                BatchStream(ds, order, readers=max(1, threads), capacity=max(2, 2 * threads), ordered=True) as stream:
            for batch in stream:
                writer.write(_hashed(batch, hash_bits, rehash, options["values"]))
                bar.update(batch.n_rows)
        _finish(writer, report, n_features if n_features is not None else ds.n_features)
    except BaseException:
        writer.abort()
        raise
    report.bytes_in = ds.info().get("bytes_on_disk") or 0

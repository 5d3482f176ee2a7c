"""The Parquet interaction layout: one row per observation (user, item, rating[, weight]).

Columns ``user`` and ``item`` (uint32, or uint64 when an id needs it), ``rating`` float32,
optional ``weight`` float32 (a file of pairs to score, with no known ratings, has neither:
``predict`` reads it, training and evaluation refuse it); file key-value metadata ``interactions_version``, ``n_users``,
``n_items`` (the largest id + 1: ids index the factor matrices directly), ``n_rows``
(docs/formats.md, "Interactions"). Written by streamhog with PLAIN encoding, no
statistics, codec none by default, in row groups of ``rows_per_group`` rows: a row group
is a block, the unit reader threads fetch and shuffle, as for the sparse layout.

Reading validates every block before a kernel sees it: the types, no nulls, ids below the
file's ``n_users`` / ``n_items``, finite ratings, finite non-negative weights. An error
names the file and the row group. The sparse layout's readers refuse these files (they
carry no ``format_version``), and these readers refuse sparse files (no
``interactions_version``), each saying what the file is not.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError, DataFormatError

USER, ITEM, RATING, WEIGHT = "user", "item", "rating", "weight"
META_VERSION = "interactions_version"
META_N_USERS, META_N_ITEMS, META_N_ROWS = "n_users", "n_items", "n_rows"
INTERACTIONS_VERSION = 1
READABLE_VERSIONS = (1,)
#: Ids above this go to a uint64 column (the file is rewritten once, when the first one comes).
MAX_UINT32 = 2**32 - 1
#: Largest id accepted: int64 arithmetic in the kernels and the matrices' row counts.
MAX_ID = 2**63 - 1
#: 16,384 rows (196 KiB) per row group: small files still make several blocks for the
#: threads to share, and a block is still far longer to train than to fetch.
DEFAULT_ROWS_PER_GROUP = 16_384
_CODEC = {"none": "NONE", "snappy": "SNAPPY", "zstd": "ZSTD", "lz4": "LZ4", "gzip": "GZIP"}


@dataclass(frozen=True)
class InteractionBatch:
    """Rows ``[row_start, row_start + n_rows)`` of an interaction dataset (arrays may be
    read-only views of Arrow buffers: consumers never write into them)."""

    users: np.ndarray            # uint32 or uint64 (n_rows,)
    items: np.ndarray            # same dtype as users
    ratings: np.ndarray | None   # float32 (n_rows,); None in a file of pairs (no rating column)
    weights: np.ndarray | None = None  # float32 (n_rows,) or None (all 1)
    source: str = ""
    row_start: int = 0
    block: int = -1

    @property
    def n_rows(self) -> int:
        return len(self.users)


def interaction_schema(id_type: pa.DataType, with_weights: bool, with_ratings: bool = True) -> pa.Schema:
    fields = [pa.field(USER, id_type, nullable=False), pa.field(ITEM, id_type, nullable=False)]
    if with_ratings:
        fields.append(pa.field(RATING, pa.float32(), nullable=False))
    if with_weights:
        fields.append(pa.field(WEIGHT, pa.float32(), nullable=False))
    return pa.schema(fields)


class InteractionWriter:
    """Writes one Parquet file of exactly ``rows_per_group`` rows per row group (the last may
    be shorter); memory is one group plus the incoming batch. Ids are written as uint32
    until one needs 64 bits; then what was written is rewritten with uint64 columns.
    ``has_ratings=False`` writes (user, item) pairs only: what ``predict`` scores."""

    def __init__(self, path, *, rows_per_group: int = DEFAULT_ROWS_PER_GROUP, compression: str = "none",
                 has_weights: bool = False, has_ratings: bool = True):
        if rows_per_group < 1:
            raise ConfigError(f"rows_per_group must be >= 1, got {rows_per_group}")
        if compression not in _CODEC:
            raise ConfigError(f"compression must be one of {tuple(_CODEC)}, got {compression!r}")
        self.path = Path(path)
        self.rows_per_group = int(rows_per_group)
        self.compression = compression
        if has_weights and not has_ratings:
            raise ConfigError("weights need ratings: a file of (user, item) pairs has neither")
        self.has_weights = has_weights
        self.has_ratings = has_ratings
        self.id_type = pa.uint32()
        self.n_rows = 0
        self.n_groups = 0
        self.max_user = -1
        self.max_item = -1
        self.rating_min = np.inf
        self.rating_max = -np.inf
        self._pending: list[tuple] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def _open(self, path) -> pq.ParquetWriter:
        # PLAIN encoding: dictionary pages would cost a lookup per value when decoding.
        return pq.ParquetWriter(path, self._schema(),
                                compression=_CODEC[self.compression], use_dictionary=False, write_statistics=False)

    def _schema(self) -> pa.Schema:
        return interaction_schema(self.id_type, self.has_weights, self.has_ratings)

    def write(self, users, items, ratings=None, weights=None) -> None:
        """Append rows (any integer arrays for the ids, already checked by the caller to be
        in 0..MAX_ID, finite ratings; no ratings for a writer of pairs)."""
        if (weights is not None) != self.has_weights:
            raise ConfigError("weights must be given exactly when the writer was created with has_weights=True")
        if (ratings is not None) != self.has_ratings:
            raise ConfigError("ratings must be given exactly when the writer was created with has_ratings=True")
        n = len(users)
        if n == 0:
            return
        users = np.asarray(users, np.uint64)
        items = np.asarray(items, np.uint64)
        self.max_user = max(self.max_user, int(users.max()))
        self.max_item = max(self.max_item, int(items.max()))
        part = (users, items)
        if self.has_ratings:
            self.rating_min = min(self.rating_min, float(np.min(ratings)))
            self.rating_max = max(self.rating_max, float(np.max(ratings)))
            part += (np.asarray(ratings, np.float32),)
        if max(self.max_user, self.max_item) > MAX_UINT32 and self.id_type == pa.uint32():
            self._widen_ids()
        self._pending.append(part + ((np.asarray(weights, np.float32),) if self.has_weights else ()))
        self._pending_rows += n
        while self._pending_rows >= self.rows_per_group:
            self._emit(self.rows_per_group)

    def _emit(self, n: int) -> None:
        """Write the first ``n`` pending rows as one row group."""
        parts = [np.concatenate([p[c] for p in self._pending]) for c in range(len(self._pending[0]))]
        types = [self.id_type, self.id_type, pa.float32(), pa.float32()]
        table = pa.Table.from_arrays([pa.array(x[:n], t) for x, t in zip(parts, types)], schema=self._schema())
        if self._writer is None:
            self._writer = self._open(self.path)
        self._writer.write_table(table, row_group_size=n)
        rest = tuple(x[n:] for x in parts)
        self._pending = [rest] if len(rest[0]) else []
        self._pending_rows = len(rest[0])
        self.n_rows += n
        self.n_groups += 1

    def _widen_ids(self) -> None:
        """Rare path (an id above 2^32 - 1): rewrite what was written with uint64 ids."""
        self.id_type = pa.uint64()
        if self._writer is None:
            return
        self._writer.close()
        old = self.path.with_name(self.path.name + ".uint32-prefix")
        self.path.rename(old)
        self._writer = self._open(self.path)
        with pq.ParquetFile(old) as prefix:
            for rg in range(prefix.num_row_groups):
                t = prefix.read_row_group(rg)
                self._writer.write_table(t.cast(self._schema()),
                                         row_group_size=max(1, t.num_rows))
        old.unlink()

    def metadata(self) -> dict:
        return {META_VERSION: INTERACTIONS_VERSION, META_N_USERS: self.max_user + 1,
                META_N_ITEMS: self.max_item + 1, META_N_ROWS: self.n_rows}

    def close(self) -> None:
        """Flush the last group and write the metadata."""
        if self._pending_rows:
            self._emit(self._pending_rows)
        if self._writer is None:
            self._writer = self._open(self.path)  # no rows at all: an empty, valid file
        self._writer.add_key_value_metadata({k: str(v) for k, v in self.metadata().items()})
        self._writer.close()
        self._writer = None

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the caller removes the output anyway
                pass
            self._writer = None


def write_interactions(path, users, items, ratings=None, weights=None, **options) -> InteractionWriter:
    """Write arrays held in memory as one interaction file (tests, benchmarks, tools);
    ``ratings=None``: a file of (user, item) pairs to score."""
    writer = InteractionWriter(path, has_weights=weights is not None, has_ratings=ratings is not None, **options)
    for start in range(0, len(users), writer.rows_per_group):
        sl = slice(start, start + writer.rows_per_group)
        writer.write(users[sl], items[sl], None if ratings is None else ratings[sl],
                     None if weights is None else weights[sl])
    writer.close()
    return writer


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _FileInfo:
    path: Path
    n_users: int
    n_items: int
    has_weights: bool
    id_type: str
    has_ratings: bool = True


def _meta_int(kv: dict, key: str, path: Path) -> int:
    text = kv.get(key)
    if text is None or not text.isdigit():
        raise DataFormatError(path, f"key-value metadata '{key}' is missing or not a non-negative integer: {text!r}")
    return int(text)


def _inspect(path: Path) -> tuple[_FileInfo, pq.FileMetaData]:
    try:
        md = pq.read_metadata(path)
    except Exception as exc:  # pyarrow says ArrowInvalid / OSError for non-Parquet files
        raise DataFormatError(path, f"not a readable Parquet file ({exc})") from exc
    kv = {k.decode(): v.decode() for k, v in (md.metadata or {}).items()}
    version = kv.get(META_VERSION)
    if version is None:
        what = "a sparse-feature file (see docs/formats.md)" if "format_version" in kv else "not a streamhog file"
        raise DataFormatError(path, f"missing key-value metadata '{META_VERSION}': not an interaction file ({what}); "
                                    "convert ratings with 'streamhog convert SRC DST --input-format ratings'")
    if not version.isdigit() or int(version) not in READABLE_VERSIONS:
        raise DataFormatError(path, f"{META_VERSION} {version!r} is not supported by this streamhog "
                                    f"(reads {', '.join(map(str, READABLE_VERSIONS))})")
    n_users, n_items = _meta_int(kv, META_N_USERS, path), _meta_int(kv, META_N_ITEMS, path)
    schema = md.schema.to_arrow_schema()
    id_type = None
    for name in (USER, ITEM):
        if name not in schema.names:
            raise DataFormatError(path, f"missing column '{name}' (uint32 or uint64 ids)")
        t = schema.field(name).type
        if t not in (pa.uint32(), pa.uint64()):
            raise DataFormatError(path, f"column '{name}' has type {t}, expected uint32 or uint64 (non-negative ids)")
        if id_type is not None and t != id_type:
            raise DataFormatError(path, f"columns 'user' and 'item' have different types ({id_type} and {t})")
        id_type = t
    has_ratings = RATING in schema.names  # without: (user, item) pairs to score
    t = schema.field(RATING).type if has_ratings else pa.float32()
    if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
        raise DataFormatError(path, f"column '{RATING}' has type {t}, expected float32")
    has_weights = WEIGHT in schema.names
    if has_weights and not has_ratings:
        raise DataFormatError(path, f"column '{WEIGHT}' without a '{RATING}' column (weights need ratings)")
    if has_weights and not pa.types.is_floating(schema.field(WEIGHT).type):
        raise DataFormatError(path, f"column '{WEIGHT}' has type {schema.field(WEIGHT).type}, expected float32")
    return _FileInfo(path, n_users, n_items, has_weights, str(id_type), has_ratings), md


class InteractionDataset:
    """An interaction file or a directory of them, as blocks (row groups); only footers are
    read when opening. ``n_users`` / ``n_items`` are the largest over the files."""

    format = "interactions"

    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix == ".parquet"
                           and not p.name.startswith((".", "_")))
            if not files:
                raise DataFormatError(self.path, "directory holds no .parquet files")
        elif self.path.is_file():
            files = [self.path]
        else:
            raise FileNotFoundError(f"{self.path}: no such file or directory")
        self.files: list[_FileInfo] = []
        block_file, block_rg, block_rows = [], [], []
        for f_index, f in enumerate(files):
            info, md = _inspect(f)
            self.files.append(info)
            for rg in range(md.num_row_groups):
                block_file.append(f_index)
                block_rg.append(rg)
                block_rows.append(md.row_group(rg).num_rows)
        self.n_users = max(f.n_users for f in self.files)
        self.n_items = max(f.n_items for f in self.files)
        self.has_weights = any(f.has_weights for f in self.files)
        #: False when a file holds (user, item) pairs only: scored by predict, never trained on.
        self.has_ratings = all(f.has_ratings for f in self.files)
        self._block_file = np.asarray(block_file, np.int64)
        self._block_rg = np.asarray(block_rg, np.int64)
        self.block_rows = np.asarray(block_rows, np.int64)
        self.block_row_start = np.concatenate([[0], np.cumsum(self.block_rows)[:-1]]).astype(np.int64)
        self.n_rows = int(self.block_rows.sum())

    @property
    def n_blocks(self) -> int:
        return len(self._block_rg)

    def describe_block(self, block: int) -> str:
        return f"{self.files[self._block_file[block]].path}: row group {int(self._block_rg[block])}"

    def open_reader(self) -> "InteractionReader":
        return InteractionReader(self)

    def require_ratings(self, what: str) -> None:
        """Refuse data without ratings (pairs to score) for ``what`` (training, evaluation)."""
        for f in self.files:
            if not f.has_ratings:
                raise DataFormatError(f.path, f"no '{RATING}' column: (user, item) pairs to score with 'streamhog "
                                              f"predict'; {what} needs ratings")

    def iter_ratings(self):
        """``(row_start, ratings, weights or None)`` of every block in order, reading only
        those columns (the training mean, the rating range)."""
        self.require_ratings("reading ratings")
        block = 0
        for info in self.files:
            cols = [RATING] + ([WEIGHT] if info.has_weights else [])
            with pq.ParquetFile(info.path) as pf:
                for rg in range(pf.num_row_groups):
                    t = pf.read_row_group(rg, columns=cols)
                    ratings, weights = _ratings(t, info, f"row group {rg}")
                    yield int(self.block_row_start[block]), ratings, weights
                    block += 1

    def distinct_ids(self, which: str, min_rating: float | None = None) -> np.ndarray:
        """The distinct ``"user"`` or ``"item"`` ids of the data, ascending (uint64), of the rows
        rated at least ``min_rating`` when given; read block by block (memory: the ids)."""
        seen = [np.zeros(0, np.uint64)]
        reader = self.open_reader()
        try:
            for b in range(self.n_blocks):
                batch = reader.read(b)
                ids = batch.users if which == "user" else batch.items
                if min_rating is not None:
                    ids = ids[batch.ratings >= min_rating]
                seen.append(np.unique(ids).astype(np.uint64))
                if len(seen) > 64:  # keep the list short: its union so far
                    seen = [np.unique(np.concatenate(seen))]
        finally:
            reader.close()
        return np.unique(np.concatenate(seen))

    def schema(self) -> dict:
        """What a resumed run must find unchanged in its data."""
        return {"path": str(self.path.resolve()), "format": self.format, "n_rows": self.n_rows,
                "n_blocks": self.n_blocks, "n_users": self.n_users, "n_items": self.n_items,
                "has_weights": self.has_weights}

    def info(self) -> dict:
        return {"format": self.format, "path": str(self.path), "files": len(self.files), "n_rows": self.n_rows,
                "n_users": self.n_users, "n_items": self.n_items, "blocks": self.n_blocks,
                "id_type": "uint64" if any(f.id_type == "uint64" for f in self.files) else "uint32",
                "has_weights": self.has_weights, "has_ratings": self.has_ratings, "bytes_on_disk": sum(f.path.stat().st_size for f in self.files),
                "interactions_version": INTERACTIONS_VERSION}


def _ratings(table: pa.Table, info: _FileInfo, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The rating (and weight) columns of a block, checked: no nulls, finite, weights >= 0;
    (None, None) for a file of pairs."""
    if not info.has_ratings:
        return None, None
    out = []
    for name in (RATING, WEIGHT) if info.has_weights else (RATING,):
        col = table.column(name)
        if col.null_count:
            raise DataFormatError(info.path, f"column '{name}' holds {col.null_count} null rows", where=where)
        arr = np.asarray(col.chunk(0) if col.num_chunks == 1 else col.combine_chunks())
        if arr.dtype != np.float32:
            arr = arr.astype(np.float32)
        bad = ~np.isfinite(arr) if name == RATING else ~(np.isfinite(arr) & (arr >= 0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "not finite" if name == RATING else "not a finite non-negative number"
            raise DataFormatError(info.path, f"row {row}: {name} {arr[row]} is {what}", where=where)
        out.append(arr)
    return out[0], (out[1] if info.has_weights else None)


class InteractionReader:
    """Reads blocks for one thread (each thread opens its own: pyarrow's ParquetFile is not
    shared between threads, see streamhog/io/formats/parquet.py)."""

    def __init__(self, dataset: InteractionDataset):
        self.dataset = dataset
        self._open: dict[int, pq.ParquetFile] = {}

    def _file(self, i: int) -> pq.ParquetFile:
        pf = self._open.get(i)
        if pf is None:
            if len(self._open) >= 16:  # bound open handles on directories of many files
                self._open.pop(next(iter(self._open))).close()
            pf = self._open[i] = pq.ParquetFile(self.dataset.files[i].path, memory_map=True)
        return pf

    def read(self, block: int) -> InteractionBatch:
        ds = self.dataset
        fi, rg = int(ds._block_file[block]), int(ds._block_rg[block])
        info = ds.files[fi]
        where = f"row group {rg}"
        cols = [USER, ITEM] + ([RATING] if info.has_ratings else []) + ([WEIGHT] if info.has_weights else [])
        try:
            table = self._file(fi).read_row_group(rg, columns=cols, use_threads=False)
        except Exception as exc:
            raise DataFormatError(info.path, f"cannot be read ({exc})", where=where) from exc
        ids = []
        for name, limit in ((USER, info.n_users), (ITEM, info.n_items)):
            col = table.column(name)
            if col.null_count:
                raise DataFormatError(info.path, f"column '{name}' holds {col.null_count} null rows", where=where)
            arr = np.asarray(col.chunk(0) if col.num_chunks == 1 else col.combine_chunks())
            if len(arr) and int(arr.max()) >= limit:
                row = int(np.argmax(arr >= limit))
                raise DataFormatError(info.path, f"row {row}: {name} id {int(arr[row])} >= the file's "
                                                 f"n_{name}s {limit} (metadata)", where=where)
            ids.append(arr)
        ratings, weights = _ratings(table, info, where)
        return InteractionBatch(ids[0], ids[1], ratings, weights, source=f"{info.path} row group {rg}",
                                row_start=int(ds.block_row_start[block]), block=block)

    def close(self) -> None:
        for pf in self._open.values():
            pf.close()
        self._open.clear()

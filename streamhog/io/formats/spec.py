"""Constants of the on-disk formats (docs/formats.md is the specification)."""
from __future__ import annotations

FORMAT_VERSION = 1
#: Version 2 adds the packed Parquet layout. A file carries the lowest version that
#: describes it (list-layout Parquet and Zarr stay 1, readable by older streamhogs).
PACKED_FORMAT_VERSION = 2
#: Versions this code reads. A file written by a newer streamhog is refused, not misread.
READABLE_VERSIONS = (1, 2)

# Column / array names, shared by Parquet and Zarr where they coincide.
LABEL = "label"          # Parquet column
LABELS = "labels"        # Zarr array
INDICES = "indices"
VALUES = "values"
WEIGHT = "weight"        # Parquet column
WEIGHTS = "weights"      # Zarr array
INDPTR = "indptr"        # Zarr array

META_N_FEATURES = "n_features"
META_FORMAT_VERSION = "format_version"

#: Largest feature id the uint32 ``indices`` can hold, and so the largest ``n_features``.
MAX_INDEX = 2**32 - 1
MAX_N_FEATURES = MAX_INDEX + 1

#: Rows per Parquet row group / Zarr block (benchmarks/decode_formats.py): Parquet decodes
#: as fast at 16K rows as at 64K with a quarter of the memory per block; Zarr pays a fixed
#: cost per block read and needs 64K-row blocks to reach the same rate.
DEFAULT_ROWS_PER_GROUP = {"parquet": 16_384, "zarr": 65_536}
DEFAULT_COMPRESSION = "none"
#: Parquet layouts of ``indices``/``values`` (docs/formats.md): ``packed`` stores each row's
#: ids as one binary cell of little-endian uint32 (values: float32), which Arrow decodes
#: with a copy, about 2x faster than ``list`` (list<uint32>), whose repetition levels Arrow
#: decodes per element (benchmarks/decode_formats.py). ``list`` is what other tools write.
PARQUET_LAYOUTS = ("packed", "list")
DEFAULT_PARQUET_LAYOUT = "packed"
PARQUET_COMPRESSIONS = ("none", "snappy", "zstd", "lz4", "gzip")
ZARR_COMPRESSIONS = ("none", "zstd", "lz4", "gzip")

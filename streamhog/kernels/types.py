"""The numba types of the kernels' arguments: one set of aliases for every kernel.

Inputs may be read-only (Arrow and Zarr buffers, memory maps opened ``mode="r"``), so input
arrays are declared read-only; what a kernel writes is declared writable.
"""
from __future__ import annotations

from numba import types


def ro(dtype, layout: str = "C"):
    """A read-only 1-D array of ``dtype``."""
    return types.Array(dtype, 1, layout, readonly=True)


def rw(dtype, layout: str = "C"):
    """A writable 1-D array of ``dtype``."""
    return types.Array(dtype, 1, layout)


RO_U8 = ro(types.uint8)
RO_I16 = ro(types.int16)
RO_I32 = ro(types.int32)
RO_I64 = ro(types.int64)
RO_U32 = ro(types.uint32)
RO_F32 = ro(types.float32)
RO_F32_ANY = ro(types.float32, "A")  # strided views (a column of a wider table)
RO_F64 = ro(types.float64)
RW_U8 = rw(types.uint8)
RW_I32 = rw(types.int32)
RW_I64 = rw(types.int64)
RW_U32 = rw(types.uint32)
RW_F32 = rw(types.float32)
RW_F32_ANY = rw(types.float32, "A")  # strided views (the fields of a model's record file)
RW_F64 = rw(types.float64)
RW_F64_2D = types.Array(types.float64, 2, "C")
RW_I64_2D = types.Array(types.int64, 2, "C")

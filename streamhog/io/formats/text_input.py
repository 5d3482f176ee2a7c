"""Text input, streamed in blocks of whole lines: a path, ``-`` (standard input) or a binary
file object, plain or compressed (gzip, bz2, xz: recognised from the first bytes). Shared
by the LIBSVM and click-log readers.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
import zlib

from ...errors import DataFormatError

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
_SNIFF = 6  # bytes needed to recognise every magic above


class _RawSource(io.RawIOBase):
    """The undecoded input: a few sniffed bytes first (when they could not be peeked), then
    the file; counts the bytes read and closes the file only when this module opened it."""

    def __init__(self, f, prefix: bytes, owned: bool):
        super().__init__()
        self._f = f
        self._prefix = prefix
        self._owned = owned
        self.bytes_read = 0
        try:
            self._start = f.tell() - len(prefix) if f.seekable() else None
        except (OSError, AttributeError, ValueError):
            self._start = None

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        mv = memoryview(b).cast("B")
        if self._prefix:
            n = min(len(self._prefix), len(mv))
            mv[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
        elif hasattr(self._f, "readinto"):
            n = self._f.readinto(mv) or 0
        else:
            data = self._f.read(len(mv))
            n = len(data)
            mv[:n] = data
        self.bytes_read += n
        return n

    @property
    def can_rewind(self) -> bool:
        return self._start is not None

    def rewind(self) -> None:
        self._f.seek(self._start)
        self._prefix = b""
        self.bytes_read = 0

    def close(self) -> None:
        if not self.closed and self._owned:
            self._f.close()
        super().close()


class _BinaryInput(io.RawIOBase):
    """Readable decoded (decompressed) input; ``close()`` closes what was opened for it."""

    def __init__(self, raw: _RawSource, compression: str | None, name: str):
        super().__init__()
        self.raw = raw
        self.compression = compression
        self.name = name
        self._stream = self._decoder()

    def _decoder(self):
        if self.compression == "gzip":
            return gzip.GzipFile(fileobj=self.raw, mode="rb")
        if self.compression == "bz2":
            return bz2.BZ2File(self.raw, mode="rb")
        if self.compression == "xz":
            return lzma.LZMAFile(self.raw, mode="rb")
        return self.raw

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        return self._stream.readinto(b)

    @property
    def bytes_read(self) -> int:
        """Bytes read from the file as stored (compressed bytes when compressed)."""
        return self.raw.bytes_read

    @property
    def can_rewind(self) -> bool:
        return self.raw.can_rewind

    def rewind(self) -> None:
        """Back to the start of the input (needs a seekable file)."""
        if self._stream is not self.raw:
            self._stream.close()
        self.raw.rewind()
        self._stream = self._decoder()

    def close(self) -> None:
        if not self.closed:
            try:
                if self._stream is not self.raw:
                    self._stream.close()
            finally:
                self.raw.close()
        super().close()


def open_binary_input(source) -> tuple[io.RawIOBase, str]:
    """Open LIBSVM input for binary reading: ``(fileobj, name)``.

    ``source`` is a path (str or PathLike), ``"-"`` for standard input, or a binary file
    object.  gzip, bz2 and xz data are decompressed transparently, recognised by their magic
    bytes (peeked, so this works on pipes too), not by the file name.  Closing ``fileobj``
    closes the file when ``source`` was a path; stdin and caller-owned objects stay open.
    ``name`` is the path, ``"<stdin>"``, or the file object's ``name`` (else ``"<stream>"``).
    """
    owned = False
    if isinstance(source, (str, bytes, os.PathLike)):
        path = os.fsdecode(source)
        if path == "-":
            f, name = sys.stdin.buffer, "<stdin>"
        else:
            f, name, owned = open(path, "rb"), path, True
    else:
        if isinstance(source, io.TextIOBase):
            if not hasattr(source, "buffer"):
                raise TypeError("LIBSVM input must be a binary file object (open it with 'rb')")
            source = source.buffer  # e.g. sys.stdin: read its bytes
        f = source
        name = getattr(source, "name", None)
        name = os.fsdecode(name) if isinstance(name, (str, bytes)) else "<stream>"
    try:
        prefix = b""
        head = f.peek(_SNIFF)[:_SNIFF] if hasattr(f, "peek") else b""
        if len(head) < _SNIFF:
            # No peek, or it returned less than the magic needs (short pipe write): read the
            # first bytes and serve them again in front of the rest.
            prefix = b""
            while len(prefix) < _SNIFF:
                chunk = f.read(_SNIFF - len(prefix))
                if not chunk:
                    break
                if not isinstance(chunk, (bytes, bytearray)):
                    raise TypeError("LIBSVM input must be a binary file object (open it with 'rb')")
                prefix += chunk
            head = prefix
        compression = next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)
        return _BinaryInput(_RawSource(f, prefix, owned), compression, name), name
    except BaseException:
        if owned:
            f.close()
        raise


def _iter_blocks(inp, block_bytes: int):
    """Yield ``(buf, length, raw_bytes_read)``: ``buf[:length]`` holds whole lines (the last
    block may end without a newline).  A line longer than a block grows the block."""
    carry = b""
    while True:
        want = max(block_bytes, len(carry))  # geometric growth for very long lines
        buf = bytearray(len(carry) + want)
        buf[: len(carry)] = carry
        filled = len(carry)
        eof = False
        with memoryview(buf) as mv:
            while filled < len(buf):
                n = inp.readinto(mv[filled:])
                if not n:
                    eof = True
                    break
                filled += n
        if eof:
            if filled:
                yield buf, filled, inp.bytes_read
            return
        cut = buf.rfind(b"\n", len(carry), filled)  # the carry holds no newline
        if cut < 0:
            carry = bytes(buf[:filled])
            continue
        carry = bytes(buf[cut + 1 : filled])
        yield buf, cut + 1, inp.bytes_read


def _decompress_error(name: str, compression: str | None, exc: BaseException) -> BaseException:
    if compression and isinstance(exc, (EOFError, OSError, lzma.LZMAError, zlib.error)):
        return DataFormatError(name, f"cannot read {compression} data: {exc}")
    return exc


def parsed_in_order(inp, name: str, block_bytes: int, threads: int, submit, label: str):
    """Read ``inp`` in blocks of whole lines on a producer thread, parse them on ``threads``
    worker threads, and yield ``(raw_bytes_read, result)`` in file order, at most
    ``threads + 1`` blocks in flight. ``submit(pool, buf, length)`` starts one block's parse
    and returns its future, or None to leave the block out. The text readers' one pipeline
    (LIBSVM and click logs, ratings). Closing the generator cancels what is in flight, stops
    the threads and closes ``inp`` (unless a read is stuck on a stalled pipe: see below)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from ..threads import Producer

    # The producer gets no reference to a reader object: a generator dropped without close()
    # must be collectable, and its finalizer (the `finally` below) then stops the threads.
    blocks = Producer(_iter_blocks(inp, block_bytes), capacity=threads + 1, name=f"{label}-read",
                      on_error=lambda exc: _decompress_error(name, inp.compression, exc))
    pool = ThreadPoolExecutor(threads, thread_name_prefix=f"streamhog-{label}-parse")
    window: deque = deque()  # (raw bytes read, future), in file order
    try:
        pending = iter(blocks)
        eof = False
        while True:
            while not eof and len(window) < threads + 1:
                item = next(pending, None)
                if item is None:
                    eof = True
                    continue
                buf, length, raw_pos = item
                future = submit(pool, buf, length)
                if future is not None:
                    window.append((raw_pos, future))
            if not window:
                break
            raw_pos, future = window.popleft()
            yield raw_pos, future.result()
    finally:
        for _, future in window:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        # A read blocked on a stalled pipe cannot be interrupted: give up waiting after a
        # while (the thread is a daemon and leaves when its read returns) and leave the
        # input open for it; regular files and decompression finish quickly.
        if blocks.close(timeout=10):
            inp.close()


class ClosingReader:
    """What a text reader shares: it reads ``self._input`` through one generator, held weakly
    in ``self._gen`` (a dropped loop closes it, and its threads, at once); ``close()`` and
    the context manager stop that generator's threads and close the input."""

    _gen = None
    _input = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Stop the threads (if iterating) and close the input; safe to call twice."""
        ref, self._gen = self._gen, None
        gen = ref() if ref is not None else None
        if gen is not None:
            gen.close()
        self._input.close()

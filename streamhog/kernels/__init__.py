"""numba ``nogil`` kernels (see each module).

numba's on-disk cache (``cache=True``) is keyed on the source file of each compiled function
alone: a kernel that compiles in functions from another module (e.g. ``linear.py`` inlines
``optimizers.py``, ``losses.py`` and ``atomics.py``; ``clicklog_parse.py`` compiles in
``libsvm_parse.py`` and ``hashing.py``) keeps its old machine code when only that module
changes. An editable install that pulls such a change would run the old arithmetic. So one
digest of every kernel source is kept beside numba's cache, which is emptied when it differs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

_STAMP = "streamhog-kernels.sha256"


def purge_stale_numba_cache(source_dir: Path, cache_dir: Path, extra_sources=()) -> bool:
    """Delete numba's cache files in ``cache_dir`` unless they were built from the kernel
    sources now in ``source_dir`` (and the ``extra_sources`` directories, whose kernels
    they compile in); returns True when it purged. A read-only install (numba then caches
    elsewhere, and an upgrade rewrites every file anyway) is left alone."""
    digest = hashlib.sha256()
    for directory in (source_dir, *extra_sources):
        for path in sorted(Path(directory).glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    stamp = cache_dir / _STAMP
    try:
        if stamp.read_text() == digest.hexdigest():
            return False
    except OSError:
        pass  # no stamp yet: what is cached there is of unknown origin
    try:
        cache_dir.mkdir(exist_ok=True)
        for f in cache_dir.iterdir():
            if f.suffix in (".nbi", ".nbc"):
                f.unlink(missing_ok=True)
        stamp.write_text(digest.hexdigest())
        return True
    except OSError:
        return False


_HERE = Path(__file__).resolve().parent
purge_stale_numba_cache(_HERE, _HERE / "__pycache__")

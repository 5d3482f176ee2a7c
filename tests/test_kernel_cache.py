"""numba's cache is emptied when any kernel source changes (it only tracks each function's own file)."""
from __future__ import annotations

from streamhog.kernels import purge_stale_numba_cache


def test_numba_cache_is_purged_when_an_inlined_module_changes(tmp_path):
    src, cache = tmp_path / "kernels", tmp_path / "kernels" / "__pycache__"
    src.mkdir()
    (src / "sgd.py").write_text("from .optimizers import rule\n")
    (src / "optimizers.py").write_text("def rule(): return 1\n")
    assert purge_stale_numba_cache(src, cache)  # no stamp yet: whatever is there is of unknown origin
    built = [cache / "sgd.train-10.py311.nbi", cache / "sgd.train-10.py311.1.nbc"]
    for f in built:
        f.write_bytes(b"machine code")
    (cache / "sgd.cpython-311.pyc").write_bytes(b"bytecode")
    assert not purge_stale_numba_cache(src, cache)  # same sources: the cache stays
    assert all(f.exists() for f in built)
    (src / "optimizers.py").write_text("def rule(): return 2\n")  # sgd.py itself unchanged
    assert purge_stale_numba_cache(src, cache)
    assert not any(f.exists() for f in built) and (cache / "sgd.cpython-311.pyc").exists()
    assert not purge_stale_numba_cache(src, cache)

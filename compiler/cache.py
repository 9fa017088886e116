"""The on-disk kernel cache: content-addressed `.py` modules that Numba's own cache can key on.

A kernel's file name is a hash of its source and of the versions that decide what the source
compiles to, so an entry never goes stale in place. Numba caches a function only if it lives in a
real file and its module can be imported by name in the next process: `build.py` registers the
module in `sys.modules` under the hash name before `njit(cache=True)` sees it. Numba validates its
index against the file's (mtime, size), so every copy of a kernel file is written with the same
fixed mtime: two processes writing the same kernel cannot invalidate each other's index.
Writes go to a temporary file and `os.replace`; a per-kernel lock serialises the first compile so
a concurrent process waits and then loads the result instead of compiling it again. Damaged
entries (a truncated `.py`, garbage index or data files) are detected and rebuilt.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile

ABI = "1"                      # bump when what a kernel module means changes (wrapper protocol)
_FIXED_MTIME = 1_600_000_000   # see the module docstring
_fallback_dir = None


def versions() -> str:
    import llvmlite
    import numba
    import numpy
    tg = sys.modules.get("tracegrad")
    return (f"abi={ABI} python={sys.version_info[:3]} numpy={numpy.__version__} numba={numba.__version__} "
            f"llvmlite={llvmlite.__version__} tracegrad={getattr(tg, '__version__', '?')}")


def key(source: str) -> str:
    h = hashlib.sha256()
    h.update(versions().encode())
    h.update(b"\0")
    h.update(source.encode())
    return "tg_" + h.hexdigest()[:32]


def cache_dir() -> str:
    """`$TRACEGRAD_CACHE_DIR`, else the user cache dir (`~/.cache/tracegrad`); kernels below it."""
    root = os.environ.get("TRACEGRAD_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "tracegrad")
    return os.path.join(root, "kernels")


def _usable_dir() -> str:
    global _fallback_dir
    d = cache_dir()
    try:
        os.makedirs(d, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    # read-only or missing home: keep working, with a cache that lasts one process
    if _fallback_dir is None:
        _fallback_dir = tempfile.mkdtemp(prefix="tracegrad-kernels-")
    return _fallback_dir


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def ensure_source(name: str, source: str) -> str:
    """Path of the kernel file for `name`, (re)written if missing or damaged."""
    d = _usable_dir()
    path = os.path.join(d, name + ".py")
    if _read(path) == source and _stamp_ok(path):
        return path
    fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(source)
        os.utime(tmp, (_FIXED_MTIME, _FIXED_MTIME))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _stamp_ok(path) -> bool:
    try:
        return int(os.stat(path).st_mtime) == _FIXED_MTIME
    except OSError:
        return False


@contextlib.contextmanager
def lock(path: str):
    """An exclusive lock beside `path` (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def purge_numba_entry(dispatcher, module_name: str):
    """Delete Numba's index and data files for this kernel (they are rebuilt on the next save)."""
    cache = getattr(dispatcher, "_cache", None)
    folder = getattr(cache, "_cache_path", None)
    index = getattr(getattr(cache, "_cache_file", None), "_index_name", None)
    if folder is None:
        return
    prefix = index[:-len(".nbi")] if index else module_name + "."
    with contextlib.suppress(OSError):
        for f in os.listdir(folder):
            if f.startswith(prefix) and (f.endswith(".nbi") or f.endswith(".nbc")):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, f))


def guard_numba_cache(dispatcher, module_name: str):
    """Make a damaged Numba cache entry a miss (purged, then rebuilt) instead of an exception."""
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or not hasattr(cache, "load_overload"):
        return
    load, save = cache.load_overload, cache.save_overload

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception:
            purge_numba_entry(dispatcher, module_name)
            return None

    def save_overload(sig, data):
        try:
            save(sig, data)
        except Exception:
            # the cache is only an accelerator: a failed save (full disk, garbage index) is a miss
            purge_numba_entry(dispatcher, module_name)

    cache.load_overload = load_overload
    cache.save_overload = save_overload

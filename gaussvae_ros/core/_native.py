"""Loader for the compiled rasterizer (``_raster.c``), called through ctypes.

The package build (``pip install .``, ``pip install -e .`` or ``colcon build``) compiles
``_raster.c`` as the extension module ``gaussvae_ros.core._raster``. When it is missing (running from
a source tree that was never built) it is compiled once into ``~/.cache/gaussvae_ros`` with the
system C compiler. :func:`load` returns ``None`` when neither works; callers then fall back to the
pure-torch implementation. ``GAUSSVAE_RASTER_LIB=/path/to/lib.so`` loads that build instead (e.g. a
portable and a ``-march=native`` build side by side: benchmarks/bench_native.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

_SOURCE = Path(__file__).with_name("_raster.c")
_lib: ctypes.CDLL | None = None
_load_error: str | None = None

#: Compiler flags shared by setup.py and the fallback build: portable by default (runs on any CPU
#: of the architecture); ``-march=native`` only when GAUSSVAE_NATIVE=1 (see setup.py).
def compile_flags() -> list[str]:
    flags = ["-O3", "-ffast-math", "-fopenmp", "-fno-finite-math-only"]
    if os.environ.get("GAUSSVAE_NATIVE") == "1":
        flags.append("-march=native")
    return flags


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
    lib.gs_forward.argtypes = [i, i, i, i, p, p, p, f, f, i, i, p, p]
    lib.gs_forward.restype = i
    lib.gs_backward.argtypes = [i, i, i, i, p, p, p, f, f, i, i, p, p, p, p, p, p]
    lib.gs_backward.restype = i
    lib.gs_count_pairs.argtypes = [i, i, i, p, p, f, f]
    lib.gs_count_pairs.restype = ctypes.c_longlong
    lib.gs_project.argtypes = [i, i, i, f, p, p, p, p, p]
    lib.gs_project.restype = None
    lib.gs_project_backward.argtypes = [i, i, i, f, p, p, p, p, p, p, p, p]
    lib.gs_project_backward.restype = None
    lib.gs_image_loss.argtypes = [i, i, i, p, p, f, i, p]
    lib.gs_image_loss.restype = ctypes.c_double
    return lib


def _built_extension() -> Path | None:
    spec = importlib.util.find_spec("gaussvae_ros.core._raster")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin)
    # A stale build of an older source would silently disagree with this package's Python side.
    if path.stat().st_mtime < _SOURCE.stat().st_mtime:
        return None
    return path


def _compile_fallback() -> Path:
    source = _SOURCE.read_bytes()
    flags = compile_flags()
    key = hashlib.sha256(source + " ".join(flags).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gaussvae_ros"
    target = cache / f"_raster_{key}{sysconfig.get_config_var('SHLIB_SUFFIX') or '.so'}"
    if target.exists():
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler found to build the rasterizer")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    cmd = [compiler, *flags, "-fPIC", "-shared", "-o", str(tmp), str(_SOURCE), "-lm"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(f"building the rasterizer failed: {' '.join(cmd)}\n{result.stderr}")
    os.replace(tmp, target)
    return target


def load() -> ctypes.CDLL | None:
    """The compiled kernels, or ``None`` (with the reason in :func:`load_error`) if unavailable."""
    global _lib, _load_error
    if _lib is not None or _load_error is not None:
        return _lib
    if os.environ.get("GAUSSVAE_NO_NATIVE") == "1":
        _load_error = "disabled by GAUSSVAE_NO_NATIVE=1"
        return None
    try:
        override = os.environ.get("GAUSSVAE_RASTER_LIB")
        path = Path(override) if override else (_built_extension() or _compile_fallback())
        _lib = _declare(ctypes.CDLL(str(path)))
    except OSError as exc:
        _load_error = str(exc)
        print(f"gaussvae_ros: compiled rasterizer unavailable, using pure torch: {exc}", file=sys.stderr)
    return _lib


def load_error() -> str | None:
    return _load_error

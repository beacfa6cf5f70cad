"""Reading pickled `.npy` files without executing code from them.

A pickle can name any importable callable and call it while loading (os.system included). The
unpickler here resolves only the handful of numpy globals that rebuild arrays, dtypes and scalars;
any other global stops the load before anything is called.
"""
from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

# numpy >= 2 moved the array reconstruction helpers to numpy._core (private, so untyped).
_NUMPY_CORE: Any = getattr(np, "_core", None) or np.core


def _allowed_globals() -> dict[tuple[str, str], object]:
    table: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                            ("_codecs", "encode"): codecs.encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = _NUMPY_CORE.multiarray._reconstruct
        table[(mod, "scalar")] = _NUMPY_CORE.multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(mod, "_frombuffer")] = _NUMPY_CORE.numeric._frombuffer
    # Pickles of numpy >= 1.25 name concrete dtype classes (numpy.dtypes.Float32DType, ...).
    for name in dir(np.dtypes):
        obj = getattr(np.dtypes, name)
        if isinstance(obj, type) and issubclass(obj, np.dtype):
            table[("numpy.dtypes", name)] = obj
    return table


_ALLOWED = _allowed_globals()


class ForbiddenPickle(Exception):
    """The pickle names a global outside the allow-list, or is not a pickled numpy object."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ForbiddenPickle(f"forbidden global {module}.{name}") from None

    def persistent_load(self, pid: object) -> object:
        raise ForbiddenPickle("persistent ids are not allowed")


def load_pickled_npy(path: str | Path) -> object:
    """The object stored in a `.npy` written with np.save(obj, allow_pickle=True), loaded safely.

    Raises ForbiddenPickle (message names the offending global) or ValueError for a malformed file.
    """
    with open(path, "rb") as fh:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = npy_format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, _fortran, dtype = npy_format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if not dtype.hasobject:
            raise ValueError(f"expected a pickled object array, found a plain {dtype} array of shape {shape}")
        data = fh.read()
    try:
        arr = _RestrictedUnpickler(io.BytesIO(data)).load()
    except ForbiddenPickle:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt pickle streams raise many types
        raise ValueError(f"corrupt pickle payload ({type(exc).__name__}: {exc})") from None
    if isinstance(arr, np.ndarray) and arr.dtype.hasobject and arr.shape == ():
        return arr.item()
    return arr

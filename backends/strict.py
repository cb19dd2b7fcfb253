"""The strict backend: NumPy compute behind arrays that refuse to meet NumPy arrays, as CuPy's do.

CI has no GPU, so host/device mixing would only fail on one. A ``StrictArray`` wraps an ndarray
and behaves like a CuPy array where it matters: ``numpy.asarray(a)`` raises, a ufunc or array
function handed a plain ndarray raises, indexing returns 0-d arrays rather than host scalars, and
the only ways across are the explicit ones, ``strict.asarray(host)`` in and ``a.get()`` out.
``float(a)``, ``int(a)`` and ``bool(a)`` work on one-element arrays, as on CuPy (they synchronise).
Every kernel, loss, optimizer and the training loop run on it in CI.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

TRANSFERS = frozenset({"asarray", "array"})  # take host data on purpose: the explicit copies to the device


class MixingError(TypeError):
    """A host (NumPy) array met a device array: on CuPy this would fail too, or copy silently."""


def _refuse(value: np.ndarray) -> MixingError:
    return MixingError(f"a NumPy array of shape {value.shape} was mixed with strict (device) arrays: copy it over "
                       f"with the backend's asarray, or bring device arrays back with .get()")


def unwrap(value: Any, host_ok: bool = False) -> Any:
    """The ndarrays inside ``value`` (arrays, and lists/tuples/dicts of them); plain ndarrays are refused."""
    if isinstance(value, StrictArray):
        return value.data
    if isinstance(value, np.ndarray) and not host_ok:
        raise _refuse(value)
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(v, host_ok) for v in value)
    if isinstance(value, dict):
        return {k: unwrap(v, host_ok) for k, v in value.items()}
    return value


def wrap(value: Any) -> Any:
    """Results as device arrays: ndarrays and NumPy scalars (CuPy reductions return 0-d arrays)."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(wrap(v) for v in value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


class StrictArray(NDArrayOperatorsMixin):
    """An ndarray that stays on the (pretend) device."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray):
        self.data = data

    # -- the refusals ------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise MixingError("implicit conversion of a strict (device) array to NumPy is not allowed: use .get()")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        result = getattr(ufunc, method)(*unwrap(inputs), **unwrap(kwargs))
        out = kwargs.get("out")
        if out is not None:  # in-place: hand back the very arrays written into
            return out[0] if len(out) == 1 else out
        return wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        return wrap(func(*unwrap(args), **unwrap(kwargs)))

    def __array_namespace__(self, api_version=None):
        return namespace

    # -- the explicit way back -------------------------------------------------------------
    def get(self) -> np.ndarray:
        """A host copy, as ``cupy.ndarray.get``."""
        return self.data.copy()

    # -- array behaviour ---------------------------------------------------------------------
    def __getitem__(self, key):
        return wrap(self.data[unwrap(key)])

    def __setitem__(self, key, value):
        self.data[unwrap(key)] = unwrap(value)

    def __getattr__(self, name: str):
        if name == "data" or name.startswith("__"):  # no __array_interface__: NumPy must not see the data
            raise AttributeError(name)
        attr = getattr(self.data, name)
        if callable(attr):
            return lambda *args, **kwargs: wrap(attr(*unwrap(args), **unwrap(kwargs)))
        return wrap(attr) if isinstance(attr, np.ndarray) else attr

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        return (wrap(v) for v in self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __index__(self) -> int:
        return self.data.__index__()

    def __bool__(self) -> bool:
        return bool(self.data)

    def __copy__(self) -> StrictArray:
        return StrictArray(self.data.copy())

    def __deepcopy__(self, memo) -> StrictArray:
        return StrictArray(self.data.copy())

    def __repr__(self) -> str:
        return f"strict({self.data!r})"


def _device_function(func):
    """``func`` over device arrays; with ``out=`` it returns that very array, as NumPy and CuPy do."""

    def call(*args, **kwargs):
        result = wrap(func(*unwrap(args), **unwrap(kwargs)))
        out = kwargs.get("out")
        return out if isinstance(out, StrictArray) else result

    return call


def _transfer(func):
    """``asarray``/``array``: device arrays pass through; host data is copied over, as CuPy copies it to the
    device (a later write to the host array must not show on the device)."""

    def call(obj, *args, **kwargs):
        if isinstance(obj, StrictArray):
            return wrap(func(obj.data, *args, **kwargs))
        return StrictArray(np.array(func(unwrap(obj, host_ok=True), *args, **kwargs), copy=True))

    return call


class Namespace:
    """NumPy's functions over strict arrays: the ``xp`` that kernels get on the strict backend."""

    def __init__(self, module: types.ModuleType):
        self._module = module

    def __getattr__(self, name: str):
        obj = getattr(self._module, name)
        if isinstance(obj, types.ModuleType):
            return Namespace(obj)  # xp.lib.stride_tricks, xp.linalg
        if isinstance(obj, type) or not callable(obj):
            return obj  # dtypes, constants
        return _transfer(obj) if name in TRANSFERS else _device_function(obj)

    def __repr__(self) -> str:
        return f"<strict namespace over {self._module.__name__}>"


namespace = Namespace(np)

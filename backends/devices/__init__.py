"""Backends as objects: a name, an array module, the dtypes it runs, and how arrays cross to and from it.

A backend knows its device, not the graph: kernels live in ``cnngraph.backends.kernels`` (generic
ones written once over ``xp``, and any a backend registers for itself under its name), and the
executors in ``cnngraph.backends.executor`` / ``training`` run a graph on one. Every module of this
package defines one backend and registers it; ``available()`` says why one cannot run here, so
``cnngraph backends`` and ``compile(backend=...)`` can say it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnngraph.arrays import to_numpy
from cnngraph.errors import BackendError
from cnngraph.registry import Registry, import_modules

HALF = ("float16", "bfloat16")  # stored in half precision, computed with float32 master weights


class Backend:
    """Base: subclasses set the class attributes and implement the device-specific methods."""

    name: str = ""
    summary: str = ""
    dtypes: tuple[str, ...] = ("float32", "float64")
    lowering: tuple[str, ...] = ()  # passes the backend appends to a compile's pipeline
    prefers: str = "NCHW"  # the storage its fast kernels want (channels_last lowers toward it)
    cpu_blas: bool = False  # its GEMMs run in this process's BLAS, whose threads backends/threads.py sets
    rank: int = 0  # where `cnngraph backends` lists it: the reference first, test backends last
    # Node-by-node check tolerance per dtype, relative to the reference's largest magnitude (backends/check.py)
    tolerances: dict[str, float] = {"float64": 1e-9, "float32": 1e-4, "float16": 1e-2}

    # -- what this machine offers ----------------------------------------------------------
    def unavailable(self) -> str | None:
        """Why this backend cannot run here, or None if it can."""
        return None

    def require(self) -> Backend:
        why = self.unavailable()
        if why is not None:
            raise BackendError(f"backend '{self.name}' cannot run here: {why}")
        return self

    def check_dtype(self, dtype: str) -> str:
        if dtype not in self.dtypes:
            raise BackendError(f"backend '{self.name}' runs dtypes {', '.join(self.dtypes)}, not {dtype!r}")
        return dtype

    @property
    def xp(self) -> Any:
        """The array module kernels compute with."""
        raise NotImplementedError

    # -- what compile() returns -------------------------------------------------------------
    def compiled(self, graph: Any, dtype: str, seed: int, train: bool) -> Any:
        """The model ``compile`` hands back for the optimised ``graph``: by default the schedule loop over
        this backend's kernels (a backend that runs whole graphs in an engine of its own overrides it)."""
        if train:  # the training stack (losses, loop, plots) loads only for training
            from cnngraph.backends.training import TrainingExecutor

            return TrainingExecutor(graph, self, dtype, seed)
        from cnngraph.backends.executor import Executor

        return Executor(graph, self, dtype, seed)

    # -- crossing between host and device --------------------------------------------------
    def asarray(self, value: Any, dtype: Any = None) -> Any:
        """``value`` (host data or this backend's array) as this backend's array; host data is copied over."""
        return self.xp.asarray(value, dtype=dtype)

    def copy(self, value: Any, dtype: Any = None) -> Any:
        """A private copy on the device (parameters an executor may update in place)."""
        return self.xp.array(value, dtype=dtype, copy=True)

    def stage(self, host: np.ndarray, dtype: Any = None) -> Any:
        """A host batch on its way to the device, called from the data loader's background thread: on a
        GPU the copy runs on a side stream while the current step computes."""
        return self.asarray(host, dtype=dtype)

    def to_host(self, value: Any) -> np.ndarray:
        """A NumPy array with the values of ``value``, copied back from the device if need be."""
        return to_numpy(value)

    def is_array(self, value: Any) -> bool:
        raise NotImplementedError

    def uniform(self, seed: int, shape: tuple[int, ...]) -> Any:
        """Uniform [0, 1) float32 numbers drawn on the device from ``seed`` (dropout masks)."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work (timing needs it; the host executes eagerly)."""

    # -- memory ----------------------------------------------------------------------------
    def is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, MemoryError)

    def free_bytes(self) -> int | None:
        """Memory free for arrays now, or None where it cannot be told."""
        return None

    def __repr__(self) -> str:
        return f"<backend {self.name}>"


_BACKENDS: Registry[Backend] = Registry("backend", BackendError)


def register(cls: type[Backend]) -> type[Backend]:
    _BACKENDS.add(cls.name, cls())
    return cls


def get_backend(name: str | Backend) -> Backend:
    """The backend called ``name`` (or ``name`` itself if it is one); not checked for availability."""
    return name if isinstance(name, Backend) else _BACKENDS.find(name)


def all_backends() -> list[Backend]:
    return sorted(_BACKENDS.values(), key=lambda b: b.rank)


def backend_of(array: Any) -> Backend:
    """The backend whose array ``array`` is (NumPy for host arrays and scalars)."""
    for backend in _BACKENDS.values():
        if backend.is_array(array):
            return backend
    raise BackendError(f"no backend holds arrays of type {type(array).__name__}")


import_modules(__name__, __path__)

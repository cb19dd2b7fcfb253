"""The op registry. Each module in this package declares one op family; they register on import."""

from __future__ import annotations

import importlib
import pkgutil

from cnngraph.errors import GraphError
from cnngraph.ops.base import Op, ParamSpec, Window

_REGISTRY: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: make the op known by its name."""
    if cls.name in _REGISTRY:
        raise RuntimeError(f"op {cls.name} registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def get_op(name: str) -> Op:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise GraphError(f"unknown op '{name}'; known ops: {', '.join(sorted(_REGISTRY))}") from None


def all_ops() -> dict[str, Op]:
    return dict(_REGISTRY)


_load_all()

__all__ = ["Op", "ParamSpec", "Window", "register", "get_op", "all_ops"]

"""The op registry. Each module in this package declares one op family; they register on import."""

from __future__ import annotations

from cnngraph.errors import GraphError
from cnngraph.ops.base import Op, ParamSpec, Window
from cnngraph.registry import Registry, import_modules

_REGISTRY: Registry[Op] = Registry("op", GraphError)


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: make the op known by its name."""
    _REGISTRY.add(cls.name, cls())
    return cls


def get_op(name: str) -> Op:
    return _REGISTRY.find(name)


def all_ops() -> dict[str, Op]:
    return dict(_REGISTRY)


def ops_with(trait: str) -> tuple[str, ...]:
    """The names of the ops that have ``trait`` (an ``Op`` flag such as "activation"), in registration order."""
    return tuple(name for name, op in _REGISTRY.items() if getattr(op, trait))


import_modules(__name__, __path__, skip=("base", "onnx_mapping"))

__all__ = ["Op", "ParamSpec", "Window", "register", "get_op", "all_ops", "ops_with"]

"""The model zoo: each module registers builders that return a verified Graph.

Names follow torchvision where torchvision has the model, and so do layer names, so
state_dict keys and parameter counts match.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from cnngraph.errors import UnknownModelError
from cnngraph.ir import Graph
from cnngraph.registry import Registry, import_modules


@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: Callable[..., Graph]
    family: str
    summary: str


_ZOO: Registry[ZooEntry] = Registry("model", UnknownModelError)


def register(name: str, family: str, summary: str):
    """Decorator: add a builder to the zoo under ``name``."""

    def wrap(fn: Callable[..., Graph]) -> Callable[..., Graph]:
        _ZOO.add(name, ZooEntry(name, fn, family, summary))
        return fn

    return wrap


def scaled(channels: int, width: float) -> int:
    """``channels`` times a builder's ``width`` multiplier (1: the published network), at least 1.

    Narrow builds keep a model's depth, topology and layer names: quick to build, run and export in tests.
    """
    return max(1, round(channels * width))


def zoo() -> dict[str, ZooEntry]:
    return dict(sorted(_ZOO.items()))


def build(name: str, **kwargs) -> Graph:
    """Build zoo model ``name``; an unknown name raises with the closest matches, an option the builder
    lacks (``width`` for LeNet-5) names the options it takes."""
    builder = _ZOO.find(name).builder
    options = inspect.signature(builder).parameters
    unknown = sorted(set(kwargs) - set(options))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in options.values()):
        raise UnknownModelError(f"model '{name}' has no option {', '.join(unknown)}; it takes "
                                f"{', '.join(options) or 'none'}")
    return builder(**kwargs)


import_modules(__name__, __path__)

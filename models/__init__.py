"""The model zoo: each module registers builders that return a verified Graph.

Names follow torchvision where torchvision has the model, and so do layer names, so
state_dict keys and parameter counts match.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from cnngraph.errors import UnknownModelError
from cnngraph.ir import Graph


@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: Callable[..., Graph]
    family: str
    summary: str


_ZOO: dict[str, ZooEntry] = {}


def register(name: str, family: str, summary: str):
    """Decorator: add a builder to the zoo under ``name``."""

    def wrap(fn: Callable[..., Graph]) -> Callable[..., Graph]:
        if name in _ZOO:
            raise RuntimeError(f"model {name} registered twice")
        _ZOO[name] = ZooEntry(name, fn, family, summary)
        return fn

    return wrap


def scaled(channels: int, width: float) -> int:
    """``channels`` times a builder's ``width`` multiplier (1: the published network), at least 1.

    Narrow builds keep a model's depth, topology and layer names: quick to build, run and export in tests.
    """
    return max(1, round(channels * width))


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def zoo() -> dict[str, ZooEntry]:
    return dict(sorted(_ZOO.items()))


def build(name: str, **kwargs) -> Graph:
    """Build zoo model ``name``; an unknown name raises with the closest matches."""
    try:
        entry = _ZOO[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_ZOO), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(sorted(_ZOO))}"
        raise UnknownModelError(f"unknown model '{name}'{hint}") from None
    return entry.builder(**kwargs)


_load_all()

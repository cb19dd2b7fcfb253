"""Name -> item tables (ops, kernels, passes, zoo models) that fill themselves on import.

Each registry's package imports every one of its modules, and each module registers what it
defines, so adding an op, a kernel, a pass or a model touches no central list. A lookup of an
unknown name raises the registry's error type with the closest known names.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Generic, Iterable, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """A dict whose ``add`` refuses duplicates and whose ``find`` explains a miss."""

    def __init__(self, kind: str, error: type[Exception], suggest: bool = True):
        super().__init__()
        self.kind, self.error, self.suggest = kind, error, suggest

    def add(self, name: str, item: T) -> T:
        if name in self:
            raise RuntimeError(f"{self.kind} {name} registered twice")
        self[name] = item
        return item

    def find(self, name: str) -> T:
        try:
            return self[name]
        except KeyError:
            if not self.suggest:  # names users never type (kernels): suggestions would mislead
                raise self.error(f"no {self.kind} '{name}'") from None
            close = difflib.get_close_matches(name, list(self), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(self))}"
            raise self.error(f"unknown {self.kind} '{name}'; {hint}") from None


def import_modules(package: str, path: Iterable[str], skip: Iterable[str] = ()) -> None:
    """Import every module of ``package`` (its ``__path__``) except ``skip``: they register on import."""
    for info in pkgutil.iter_modules(path):
        if info.name not in skip:
            importlib.import_module(f"{package}.{info.name}")

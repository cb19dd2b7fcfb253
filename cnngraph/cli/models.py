"""`cnngraph models`: list the zoo with each model's parameter count, default input and task."""

import contextlib

import numpy as np
from rich.table import Table

from cnngraph.cli.common import console

HELP = "list the model zoo (parameters, default input, task)"


def add_arguments(p) -> None:
    pass


def run(args) -> None:
    from cnngraph.models import zoo

    table = Table("model", "family", "params", "input", "task", "description", title="cnngraph model zoo")
    with _zero_parameters():
        for entry in zoo().values():
            graph = entry.builder()
            shape = next(iter(graph.inputs.values())).shape[1:]
            table.add_row(entry.name, entry.family, _count(graph.param_count()), "x".join(map(str, shape)),
                          _task(graph), entry.summary)
    console.print(table)


def _count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} K"


def _task(graph) -> str:
    """What the first output is: scores per class, or per class and pixel; several outputs are exits or heads
    (or a detector's, recognised by their names)."""
    from cnngraph.detection.predict import is_detector

    if is_detector(graph.outputs):
        return "detection"
    kind = {2: "classification", 4: "segmentation"}.get(graph.type_of(graph.outputs[0]).rank, "other")
    return kind if len(graph.outputs) == 1 else f"{kind}, {len(graph.outputs)} outputs"


@contextlib.contextmanager
def _zero_parameters():
    """Builds get zero parameters while listing: counting needs only shapes, and zeros are allocated lazily
    where drawing VGG's random weights takes seconds."""
    from cnngraph.frontends import dsl

    draw = dsl.initialize
    dsl.initialize = lambda spec, key, seed=0, dtype=np.float32: np.zeros(spec.shape, dtype)
    try:
        yield
    finally:
        dsl.initialize = draw

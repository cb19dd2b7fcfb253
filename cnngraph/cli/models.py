"""`cnngraph models`: list the zoo with each model's parameter count, default input and task."""

import contextlib

import numpy as np
from cnngraph.cli import common
from cnngraph.cli.common import console
from cnngraph.model_info import task_of

HELP = "list the model zoo (parameters, default input, task)"


def add_arguments(p) -> None:
    pass


def run(args) -> None:
    from cnngraph.models import zoo

    table = common.table("model", "params", "input", "task", "description", numeric=("params",),
                         title="cnngraph model zoo, by family")
    families: dict[str, list] = {}
    for entry in zoo().values():
        families.setdefault(entry.family, []).append(entry)
    with _zero_parameters():
        for family, entries in families.items():
            table.add_row(f"[bold]{family}[/]", end_section=False)
            for entry in entries:
                graph = entry.builder()
                shape = next(iter(graph.inputs.values())).shape[1:]
                table.add_row(f"  {entry.name}", common.compact(graph.param_count()), "x".join(map(str, shape)),
                              _task(graph), entry.summary, end_section=entry is entries[-1])
    console.print(table)


def _task(graph) -> str:
    """What the first output is (per image, per pixel: segmentation, per region or box: detection); several
    outputs are exits or heads, except in a detector, whose outputs are its heads."""
    task = task_of(graph)
    kind = {"classification": "classify", "segmentation": "segment", "detection": "detect"}.get(task, task)
    return kind if len(graph.outputs) == 1 or task == "detection" else f"{len(graph.outputs)} outputs"


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

"""Training checkpoints: one safetensors file with arrays in named groups and JSON metadata.

Arrays are grouped by prefix: ``param/<key>`` (every model array, BatchNorm running statistics
included), ``optim/<slot>/<key>`` (optimizer state) and ``loader/<name>`` (this epoch's sample
order). The metadata holds the graph (the ``.cng`` JSON) and the run state (epoch, step, settings,
history, the data generator's ``bit_generator.state``, the dropout draws' seed and count, the float16
loss scale). Arrays arrive here on the host: the trainer copies them back from the device first.
Nothing is pickled, and the file is written to a temporary name and renamed, so a crash mid-save
leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save as st_save

from cnngraph.errors import CnnGraphError, TrainingError
from cnngraph.io import atomic_write_bytes, graph_from_json, graph_to_json, read_safetensors
from cnngraph.ir import Graph

FORMAT = "cnngraph-checkpoint"
VERSION = "1"
GROUPS = ("param", "optim", "loader")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the graph with its saved parameters, the other array groups, the run state."""

    graph: Graph
    arrays: dict[str, dict[str, np.ndarray]]
    state: dict


def save(path: str | Path, graph: Graph, arrays: dict[str, dict[str, np.ndarray]], state: dict) -> None:
    """Write ``arrays`` (group -> name -> array, ``param`` included) and ``state`` atomically."""
    flat = {f"{group}/{name}": np.require(a, requirements="C") for group, table in arrays.items() for name, a in table.items()}
    meta = {"format": FORMAT, "version": VERSION, "graph": json.dumps(graph_to_json(graph)), "state": json.dumps(state)}
    atomic_write_bytes(path, st_save(flat, metadata=meta))


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint; anything else (missing, truncated, foreign) raises TrainingError naming the file."""
    meta, flat = read_safetensors(path, "cnngraph checkpoint", TrainingError)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise TrainingError(f"{path}: not a version-{VERSION} cnngraph checkpoint "
                            f"(format {meta.get('format')!r}, version {meta.get('version')!r})")
    arrays: dict[str, dict[str, np.ndarray]] = {group: {} for group in GROUPS}
    for name, arr in flat.items():
        group, _, key = name.partition("/")
        if group not in arrays:
            raise TrainingError(f"{path}: unexpected array '{name}' (groups are {', '.join(GROUPS)})")
        arrays[group][key] = arr
    try:
        graph = graph_from_json(json.loads(meta["graph"]), arrays["param"])
        state = json.loads(meta["state"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, CnnGraphError) as e:
        raise TrainingError(f"{path}: corrupt checkpoint metadata ({type(e).__name__}: {e})") from None
    return Checkpoint(graph, arrays, state)

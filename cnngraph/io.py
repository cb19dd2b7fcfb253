"""Native single-file models (``.cng``): a safetensors file whose metadata holds the graph as JSON,
and, when known, the model's info (classes, input preprocessing, where its weights came from; see
``model_info.py``) under its own key, so files without it still load.

safetensors stores only raw arrays and a JSON header, so loading a file a user hands us can never
run code (no pickle anywhere). Writes go to a temporary file that is renamed into place, so a
crash never leaves a half-written model.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as st_save

from cnngraph.errors import CnnGraphError, ModelFileError
from cnngraph.ir import Graph, Node, TensorType
from cnngraph.limits import check_bytes
from cnngraph.model_info import ModelInfo

FORMAT = "cnngraph"
VERSION = 1


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename. The
    temporary name carries the writer's pid, so temporaries left by killed writers are removed here."""
    path = Path(path)
    _remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as e:
        raise ModelFileError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a saved model is an ordinary file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise ModelFileError(f"{path}: cannot write ({e.strerror or e})") from None
        raise


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries of earlier writes to ``path`` whose writer no longer runs (a SIGKILL
    mid-write leaves one behind): ``.<name>.<pid>.<random>.tmp``, or ``.<name>.<random>.tmp`` from
    before writers put their pid in the name. A live writer's temporary is left alone."""
    ours = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp")
    for tmp in (path.parent or Path(".")).glob(f".{glob.escape(path.name)}.*.tmp"):
        match = ours.fullmatch(tmp.name)
        if match and not (match[1] and _running(int(match[1]))):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing the same place
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, under another user
    return True


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable: fsync the folder that holds the new name (POSIX)."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def graph_to_json(graph: Graph) -> dict:
    return {
        "name": graph.name,
        "training": graph.training,
        "inputs": [{"name": k, "shape": list(t.shape), "dtype": t.dtype} for k, t in graph.inputs.items()],
        "nodes": [
            {"name": n.name, "op": n.op, "inputs": n.inputs, "attrs": n.attrs, "params": n.params}
            for n in graph.nodes
        ],
        "outputs": graph.outputs,
    }


def graph_from_json(doc: dict, params: dict[str, np.ndarray]) -> Graph:
    graph = Graph(doc["name"])
    graph.training = bool(doc.get("training", False))
    for spec in doc["inputs"]:
        graph.add_input(spec["name"], TensorType(tuple(spec["shape"]), spec["dtype"]))
    for n in doc["nodes"]:
        graph.add_node(Node(n["name"], n["op"], list(n["inputs"]), dict(n["attrs"]), dict(n["params"])))
    graph.outputs = list(doc["outputs"])
    graph.params = params
    return graph.verify()


def save(graph: Graph, path: str | os.PathLike) -> None:
    """Write ``graph``, its parameters and its info (when it has one) to one ``.cng`` file, atomically."""
    meta = {"format": FORMAT, "version": str(VERSION), "graph": json.dumps(graph_to_json(graph))}
    if graph.info is not None:
        meta["info"] = json.dumps(graph.info.to_json())
    tensors = {k: np.require(v, requirements="C") for k, v in graph.params.items()}
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def read_safetensors(path: str | os.PathLike, what: str,
                     error: type[CnnGraphError] = ModelFileError) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and arrays of a safetensors file; a missing, truncated or corrupt one raises ``error``."""
    if not Path(path).is_file():
        raise error(f"{path}: no such file")
    check_bytes(os.path.getsize(path), str(path), error)
    try:
        with safe_open(str(path), framework="np") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise error(f"{path}: truncated, corrupt or not a {what} ({e})") from None


def load(path: str | os.PathLike) -> Graph:
    """Read a ``.cng`` file; a truncated, corrupt or foreign file raises ModelFileError."""
    meta, params = read_safetensors(path, "cnngraph model")
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: a safetensors file, but not a cnngraph model (no 'format: {FORMAT}' header)")
    if meta.get("version") != str(VERSION):
        raise ModelFileError(f"{path}: format version {meta.get('version')}, this cnngraph reads {VERSION}")
    try:
        graph = graph_from_json(json.loads(meta["graph"]), params)
        info = json.loads(meta["info"]) if "info" in meta else None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise ModelFileError(f"{path}: corrupt cnngraph model ({type(e).__name__}: {e})") from None
    except CnnGraphError as e:
        raise ModelFileError(f"{path}: the stored graph does not verify: {e}") from None
    if info is not None:
        graph.info = ModelInfo.from_json(info, str(path)).check_against(graph, str(path))
    return graph

"""A checkpoint's run state checked field by field before ``Trainer.resume`` trusts any of it.

A checkpoint is a file a user hands us: its JSON state and arrays may be truncated, edited or from
another run. Every field is checked for presence, type and range (and arrays for dtype, shape and
meaning: the sample order must be a permutation of the training set, optimizer slots must match
their parameters), so a bad one is a TrainingError naming the file and the field, never an
exception from deep inside the loop an epoch later.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from cnngraph.errors import TrainingError


class Fields:
    """Reads one JSON object of the state, each field checked; errors name ``where`` and the dotted field."""

    def __init__(self, doc: Any, where: str, prefix: str = ""):
        self.where, self.prefix = where, prefix
        if not isinstance(doc, dict):
            raise TrainingError(f"{where}: field '{prefix[:-1] or 'state'}' must be an object, found "
                                f"{type(doc).__name__}")
        self.doc = doc

    def fail(self, name: str, expected: str, found: Any) -> TrainingError:
        shown = repr(found) if len(repr(found)) < 60 else type(found).__name__
        return TrainingError(f"{self.where}: field '{self.prefix}{name}' must be {expected}, found {shown}")

    def get(self, name: str) -> Any:
        if name not in self.doc:
            raise TrainingError(f"{self.where}: field '{self.prefix}{name}' is missing")
        return self.doc[name]

    def count(self, name: str, most: int | None = None) -> int:
        """A non-negative integer (at most ``most``)."""
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (most is not None and value > most):
            raise self.fail(name, f"an integer from 0 to {most}" if most is not None else "an integer >= 0", value)
        return value

    def number(self, name: str, positive: bool = False) -> float:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
                (positive and value <= 0):
            raise self.fail(name, "a finite number" + (" > 0" if positive else ""), value)
        return float(value)

    def object(self, name: str) -> Fields:
        return Fields(self.get(name), self.where, f"{self.prefix}{name}.")


def settings(fields: Fields, cls: type) -> Any:
    """A dataclass of numbers, flags and number tuples (``BoxAugment``, ``RegionSettings``) from its saved
    JSON object: every field present, of its default's type (a tuple saved as a list), nothing else."""
    defaults = dataclasses.asdict(cls())
    unknown = set(fields.doc) - set(defaults)
    if unknown:
        raise TrainingError(f"{fields.where}: field '{fields.prefix}{sorted(unknown)[0]}' is not one of "
                            f"{cls.__name__}'s fields")
    found = {}
    for name, default in defaults.items():
        value = fields.get(name)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, tuple):
            ok = isinstance(value, list) and all(_is_number(v) for v in value)
            value = tuple(value) if ok else value
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            ok = _is_number(value)
        if not ok:
            raise fields.fail(name, f"like {cls.__name__}'s default {default!r}", value)
        found[name] = value
    return cls(**found)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_state(state: dict, where: str, half: bool) -> None:
    """The JSON run state: counters, sums, history, generator states, the loss scaler when half precision."""
    top = Fields(state, where)
    top.count("epoch")
    top.count("step")
    sums = top.object("sums")
    sums.number("loss"), sums.count("correct"), sums.count("images"), sums.number("seconds")
    history = top.get("history")
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise top.fail("history", "a list of per-epoch objects", history)
    loader = top.object("loader")
    loader.count("position")
    check_generator(loader, "rng")
    check_randomness(top, half)


def check_randomness(top: Fields, half: bool) -> None:
    """The dropout draws' seed and count and, in half precision, the loss scaler's state."""
    dropout = top.object("dropout")
    dropout.count("seed"), dropout.count("draws")
    if half:
        scaler = top.object("scaler")
        scaler.number("scale", positive=True), scaler.count("growth_tracker"), scaler.count("skipped")


def check_generator(fields: Fields, name: str) -> None:
    """A NumPy PCG64 state, as ``bit_generator.state`` gives it: NumPy itself judges it, on a spare generator."""
    value = fields.get(name)
    try:
        if not isinstance(value, dict) or value.get("bit_generator") != "PCG64":
            raise ValueError
        np.random.PCG64().state = value
    except (ValueError, TypeError, KeyError, OverflowError):
        raise fields.fail(name, "a PCG64 generator state", value) from None


def check_order(arrays: dict[str, np.ndarray], where: str, samples: int) -> None:
    """The epoch's sample order, if saved mid-epoch: a permutation of the training set's indices."""
    unknown = set(arrays) - {"order"}
    if unknown:
        raise TrainingError(f"{where}: unexpected loader arrays {sorted(unknown)}")
    order = arrays.get("order")
    if order is None:
        return
    if order.ndim != 1 or order.dtype.kind not in "iu" or len(order) != samples or \
            not np.array_equal(np.sort(order), np.arange(samples)):
        raise TrainingError(f"{where}: loader/order must be a permutation of the {samples} training samples, found "
                            f"a {order.dtype} array of shape {order.shape}")


def check_optimizer(arrays: dict[str, np.ndarray], where: str, slots: list[str], params: dict[str, Any]) -> None:
    """Optimizer state: known slots, trainable parameter keys, step counts as one integer, slots shaped
    like their parameters."""
    for name, arr in arrays.items():
        slot, _, key = name.partition("/")
        if slot not in slots or key not in params:
            raise TrainingError(f"{where}: optimizer state 'optim/{name}' names no slot of {slots} for a trainable "
                                f"parameter")
        if slot == "step":
            if arr.shape != (1,) or arr.dtype.kind not in "iu" or int(arr[0]) < 1:
                raise TrainingError(f"{where}: optimizer step count 'optim/{name}' must be one integer >= 1, found "
                                    f"a {arr.dtype} array of shape {arr.shape}")
        elif arr.shape != tuple(params[key].shape) or arr.dtype.kind != "f":
            raise TrainingError(f"{where}: optimizer state 'optim/{name}' must be a float array of shape "
                                f"{tuple(params[key].shape)}, found a {arr.dtype} array of shape {arr.shape}")

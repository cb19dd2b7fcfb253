"""Optimizers: ``step(params, grads)`` updates the named parameter arrays in place.

Each mirrors ``torch.optim`` (same defaults, same update order, same first-step rules) so results
match PyTorch step for step on the same gradients. Only keys present in ``grads`` move, so frozen
parameters stay put and keep no state.

Weight decay rule: a parameter with one axis is a bias or a normalisation scale/shift
(``*.bias``, BatchNorm ``weight``) and is *not* decayed; kernels and matrices (two or more
axes) are. In this IR those are exactly the parameters whose role is "bias" or that belong to a
BatchNorm node. ``no_decay`` overrides the rule: a collection of keys, or a predicate
``(key, array) -> bool``.

Updates compute with the parameters' own array module, and state arrays are created beside them,
so a model on a device trains without a trip through the host. Step counts are host integers.
``state_dict`` brings the state back as NumPy arrays (checkpoints are host files); loading it onto
a device is explicit: ``load_state_dict(arrays, to_device=backend.copy)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from cnngraph.arrays import namespace, to_numpy
from cnngraph.errors import TrainingError

NoDecay = Collection[str] | Callable[[str, Any], bool] | None


def is_bias_or_norm(key: str, value: Any) -> bool:
    """The default no-decay rule: one-axis parameters (biases, BatchNorm weights and biases)."""
    return value.ndim <= 1


class Optimizer:
    """Per-parameter state in named slots; subclasses define ``slots`` and ``_update``."""

    name = ""
    slots: tuple[str, ...] = ()

    def __init__(self, lr: float, weight_decay: float = 0.0, no_decay: NoDecay = None):
        self.lr = self._check("lr", lr, lambda v: v >= 0, "a finite number >= 0")
        self.weight_decay = self._check("weight_decay", weight_decay, lambda v: v >= 0, "a finite number >= 0")
        if no_decay is None:
            self.exempt = is_bias_or_norm
        elif callable(no_decay):
            self.exempt = no_decay
        else:
            keys = frozenset(no_decay)
            self.exempt = lambda key, value: key in keys
        self.state: dict[str, dict[str, Any]] = {slot: {} for slot in ("step", *self.slots)}

    def _check(self, what: str, value, ok, rule: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
            raise TrainingError(f"{self.name}: {what} must be {rule}, got {value!r}")
        return float(value)

    def _fraction(self, what: str, value) -> float:
        return self._check(what, value, lambda v: 0 <= v < 1, "in [0, 1)")

    def step(self, params: dict, grads: dict) -> None:
        """One update of every parameter that has a gradient."""
        for key, grad in grads.items():
            param = params[key]
            steps = self.state["step"]  # one-element arrays: safetensors files do not keep 0-d shapes
            t = int(steps[key][0]) + 1 if key in steps else 1
            steps[key] = np.array([t], dtype=np.int64)
            decay = 0.0 if self.exempt(key, param) else self.weight_decay
            self._update(key, param, grad, decay, t)

    def _update(self, key: str, param: Any, grad: Any, decay: float, t: int) -> None:
        raise NotImplementedError

    def _slot(self, slot: str, key: str, like: Any) -> Any:
        """The state array of ``slot`` for ``key``, created as zeros beside ``like`` on first use."""
        table = self.state[slot]
        if key not in table:
            table[key] = namespace(like).zeros_like(like)
        return table[key]

    def hyper(self) -> dict:
        """The settings, for a checkpoint's JSON metadata."""
        return {k: v for k, v in vars(self).items() if isinstance(v, (int, float, bool, tuple))}

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """All state as flat ``"<slot>/<param key>" -> NumPy array`` entries (safetensors-ready), copied
        back from the device where the state lives there."""
        return {f"{slot}/{key}": to_numpy(arr) for slot, table in self.state.items() for key, arr in table.items()}

    def load_state_dict(self, arrays: dict[str, np.ndarray],
                        to_device: Callable[[np.ndarray], Any] = np.array) -> None:
        """Replace the state with ``arrays`` from ``state_dict``; unknown slots are refused. Slot arrays
        become ``to_device(array)``: private host copies by default, ``backend.copy`` for a model on a
        backend's device (it must be where the parameters are). Step counts stay on the host."""
        state: dict[str, dict[str, Any]] = {slot: {} for slot in self.state}
        for name, arr in arrays.items():
            slot, _, key = name.partition("/")
            if slot not in state or not key:
                raise TrainingError(f"{self.name}: optimizer state '{name}' does not belong to {self.name} "
                                    f"(slots {sorted(state)})")
            state[slot][key] = np.array(arr) if slot == "step" else to_device(arr)
        self.state = state


class SGD(Optimizer):
    """SGD with optional (Nesterov) momentum and L2 weight decay, like ``torch.optim.SGD`` (dampening 0)."""

    name = "sgd"
    slots = ("momentum",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 no_decay: NoDecay = None):
        super().__init__(lr, weight_decay, no_decay)
        self.momentum = self._fraction("momentum", momentum)
        if nesterov and self.momentum == 0:
            raise TrainingError(f"{self.name}: nesterov needs momentum > 0")
        self.nesterov = bool(nesterov)

    def _update(self, key, param, grad, decay, t):
        if decay:
            grad = grad + decay * param
        if self.momentum:
            buf = self.state["momentum"].get(key)
            if buf is None:  # torch starts the buffer at the first gradient, not at zero
                buf = self.state["momentum"][key] = grad.astype(param.dtype)  # a copy, beside the parameter
            else:
                buf *= self.momentum
                buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, like ``torch.optim.Adam``; weight decay is L2 on the gradient."""

    name = "adam"
    slots = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, no_decay: NoDecay = None):
        super().__init__(lr, weight_decay, no_decay)
        self.betas = (self._fraction("betas[0]", betas[0]), self._fraction("betas[1]", betas[1]))
        self.eps = self._check("eps", eps, lambda v: v > 0, "a finite number > 0")

    def _update(self, key, param, grad, decay, t):
        if decay and self.decoupled:
            param *= 1 - self.lr * decay
        elif decay:
            grad = grad + decay * param
        beta1, beta2 = self.betas
        m, v = self._slot("exp_avg", key, param), self._slot("exp_avg_sq", key, param)
        m += (1 - beta1) * (grad - m)  # torch's lerp
        v *= beta2
        v += (1 - beta2) * (grad * grad)
        denom = namespace(v).sqrt(v) / math.sqrt(1 - beta2 ** t) + self.eps
        param -= (self.lr / (1 - beta1 ** t)) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), like ``torch.optim.AdamW`` (default decay 0.01)."""

    name = "adamw"
    decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, no_decay: NoDecay = None):
        super().__init__(lr, betas, eps, weight_decay, no_decay)


class RMSProp(Optimizer):
    """RMSProp (Hinton's lecture 6e), like ``torch.optim.RMSprop`` (not centred)."""

    name = "rmsprop"
    slots = ("square_avg", "momentum")

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 weight_decay: float = 0.0, no_decay: NoDecay = None):
        super().__init__(lr, weight_decay, no_decay)
        self.alpha = self._fraction("alpha", alpha)
        self.eps = self._check("eps", eps, lambda v: v > 0, "a finite number > 0")
        self.momentum = self._fraction("momentum", momentum)

    def _update(self, key, param, grad, decay, t):
        if decay:
            grad = grad + decay * param
        square_avg = self._slot("square_avg", key, param)
        square_avg *= self.alpha
        square_avg += (1 - self.alpha) * (grad * grad)
        scaled = grad / (namespace(square_avg).sqrt(square_avg) + self.eps)
        if self.momentum:
            buf = self._slot("momentum", key, param)
            buf *= self.momentum
            buf += scaled
            scaled = buf
        param -= self.lr * scaled


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, AdamW, RMSProp)}

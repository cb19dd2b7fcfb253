"""Gradient oracle: central finite differences in float64 of L = sum over outputs of <output, G>.

Every element of every input and every trainable parameter is perturbed in turn, so a single
wrong entry of a backward kernel shows up, not only an average.
"""

from __future__ import annotations

import numpy as np

import cnngraph
from cnngraph.arrays import to_numpy
from cnngraph.ir import Graph
from tests.oracle import current_backend, random

EPS = 1e-6


def numeric_gradient(loss, array: np.ndarray) -> np.ndarray:
    """d loss / d array by central differences, perturbing ``array`` in place (and restoring it)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + EPS
        up = loss()
        array[index] = old - EPS
        down = loss()
        array[index] = old
        grad[index] = (up - down) / (2 * EPS)
    return grad


def check_gradients(graph: Graph, inputs: dict[str, np.ndarray], training: bool = True,
                    rtol: float = 1e-6, atol: float = 1e-8, wrt: tuple[str, ...] | None = None):
    """Backward of the training executor against finite differences, w.r.t. inputs AND parameters.

    ``wrt`` names the inputs to differentiate (default all; integer indices have no gradient).
    Returns the compiled model, so callers can check more (running statistics, what was kept).
    """
    model = cnngraph.compile(graph, backend=current_backend(), dtype="float64", train=True)
    outputs = model.forward(inputs, training=training, input_grads=True)
    seeds = {name: random(out.shape, 100 + i) for i, (name, out) in enumerate(outputs.items())}
    model.backward(seeds)

    def loss() -> float:
        out = model.forward(inputs, training=training)
        return sum(float((to_numpy(out[name]) * g).sum()) for name, g in seeds.items())

    wrt = tuple(inputs) if wrt is None else wrt
    assert sorted(name for name, grad in model.input_grads.items() if grad is not None) == sorted(wrt)
    assert sorted(model.grads) == sorted(model.trainable)
    for name, array in ((name, inputs[name]) for name in wrt):
        np.testing.assert_allclose(to_numpy(model.input_grads[name]), numeric_gradient(loss, array), rtol=rtol, atol=atol,
                                   err_msg=f"gradient w.r.t. input '{name}'")
    for key in model.trainable:
        np.testing.assert_allclose(to_numpy(model.grads[key]), to_numpy(numeric_gradient(loss, model.params[key])), rtol=rtol,
                                   atol=atol, err_msg=f"gradient w.r.t. parameter '{key}'")
    return model

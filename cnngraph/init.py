"""Default initialisers (He/Kaiming, Glorot/Xavier, LeCun, PyTorch's defaults), seeded per parameter.

Each parameter draws from its own generator seeded by (model seed, CRC of its name), so adding a
layer never changes the initial values of the others, and a build is reproducible bit for bit.
"""

from __future__ import annotations

import zlib

import numpy as np

from cnngraph.limits import array_bytes, check_bytes
from cnngraph.ops.base import ParamSpec


def param_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def initialize(spec: ParamSpec, key: str, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """A fresh array for ``spec``; ``key`` is the parameter's name in the graph."""
    rng = param_rng(seed, key)
    shape, fan_in, fan_out = spec.shape, max(spec.fan_in, 1), max(spec.fan_out, 1)
    dtype = np.dtype(dtype)
    check_bytes(array_bytes(shape, dtype.itemsize), f"parameter '{key}' {tuple(shape)}")  # --num-classes 10^9
    # Draw in the target dtype: VGG's 138M weights would otherwise pass through float64.
    normal = lambda std: rng.standard_normal(shape, dtype=dtype) * dtype.type(std)  # noqa: E731
    uniform = lambda bound: (rng.random(shape, dtype=dtype) * 2 - 1) * dtype.type(bound)  # noqa: E731
    init = spec.init
    if init == "zeros":
        return np.zeros(shape, dtype)
    if init == "ones":
        return np.ones(shape, dtype)
    if init == "he":  # Kaiming normal, fan_in, for ReLU networks
        return normal(np.sqrt(2.0 / fan_in))
    if init == "he_fan_out":  # torchvision's ResNet/VGG convs
        return normal(np.sqrt(2.0 / fan_out))
    if init == "glorot":  # Xavier uniform
        return uniform(np.sqrt(6.0 / (fan_in + fan_out)))
    if init == "lecun":  # LeCun normal
        return normal(np.sqrt(1.0 / fan_in))
    if init in ("torch", "torch_bias"):  # PyTorch's default: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
        return uniform(1.0 / np.sqrt(fan_in))
    if init == "normal_0.01":
        return normal(0.01)
    if init.startswith("constant="):  # one fixed value, e.g. PReLU's slope, which torch starts at 0.25
        return np.full(shape, float(init.partition("=")[2]), dtype)
    if init == "bilinear":
        return bilinear_kernel(shape).astype(dtype)
    raise ValueError(f"unknown initialiser '{init}' for parameter '{key}'")


def bilinear_kernel(shape: tuple[int, ...]) -> np.ndarray:
    """Weights that make a transposed conv a bilinear upsampler (FCN): channel i -> channel i."""
    c_in, c_out, kh, kw = shape
    def axis(k):
        f = (k + 1) // 2
        center = f - 1 if k % 2 == 1 else f - 0.5
        return 1 - np.abs(np.arange(k) - center) / f
    kernel = np.outer(axis(kh), axis(kw))
    out = np.zeros(shape)
    for i in range(min(c_in, c_out)):
        out[i, i] = kernel
    return out

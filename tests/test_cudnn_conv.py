"""The cuDNN convolution kernels' CPU-checkable parts: registration beside the generic fallback, what they
decline and why, and the geometry they declare to cuDNN. Their numbers need a GPU (``-m gpu``)."""

import numpy as np
import pytest

from cnngraph.backends.kernels import GENERIC, cudnn_conv, implementations, resolve
from cnngraph.frontends import dsl
from tests.backends import BACKENDS


def conv_node(**attrs):
    x = dsl.input("x", (4, 9, 11))
    graph = dsl.Model(x, dsl.conv2d(x, 6, name="conv", **{"kernel_size": 3, **attrs}))
    return graph.node("conv"), graph


def test_cudnn_kernels_come_first_on_cupy_with_the_generic_ones_behind():
    conv = implementations("cupy", "Conv2d")
    assert [i.name for i in conv] == ["cupy", GENERIC, "generic/nhwc"] and conv[0].backward is not None
    fused = implementations("cupy", "FusedConv2d")
    assert [i.name for i in fused] == ["cupy", GENERIC, "generic/nhwc"] and fused[0].backward is None
    assert [i.name for i in implementations("numpy", "Conv2d")] == [
        "numpy/winograd", "numpy/winograd-train", "numpy/tiled", GENERIC, "generic/nhwc"]  # tests/test_winograd.py


@pytest.mark.parametrize("attrs, dtype, reason", [
    ({}, "float64", "run float16 and float32 here, not float64"),
    ({"groups": 2, "out_channels": 6}, "float32", "grouped convolutions"),
    ({}, "float16", None),
    ({"stride": 2, "padding": (0, 1, 2, 1), "dilation": 2}, "float32", None),
])
def test_what_cudnn_declines_and_why(monkeypatch, attrs, dtype, reason):
    monkeypatch.setattr(cudnn_conv, "_cudnn", lambda: object())  # installed, as far as this check goes
    node, _ = conv_node(**{k: v for k, v in attrs.items() if k != "out_channels"})
    why = cudnn_conv.supports(node, dtype)
    assert why is None if reason is None else reason in why


def test_without_the_frontend_resolution_falls_back_and_says_why(monkeypatch):
    monkeypatch.setattr(cudnn_conv, "_cudnn", lambda: None)
    node, _ = conv_node()
    choice = resolve("cupy", node, "float32", training=True)
    assert choice.impl.backend == GENERIC
    assert choice.declined == [("cupy", "the cuDNN frontend is not installed (pip install nvidia-cudnn-frontend)")]


@pytest.mark.parametrize("wrapper,shape", [("conv3d", (4, 5, 6, 7)), ("conv1d", (4, 9))])
def test_non_2d_convolutions_resolve_to_the_generic_kernel_on_cupy(monkeypatch, wrapper, shape):
    """cuDNN is wired for 2-D only: with the frontend 'installed' a 3-D or 1-D conv still goes to the
    generic kernel, and the reason says why."""
    monkeypatch.setattr(cudnn_conv, "_cudnn", lambda: object())
    x = dsl.input("x", shape)
    graph = dsl.Model(x, getattr(dsl, wrapper)(x, 6, 3, name="conv"))
    choice = resolve("cupy", graph.node("conv"), "float32", training=True)
    assert choice.impl.backend == GENERIC
    assert choice.declined == [("cupy", f"only 2-D convolutions are wired to cuDNN, not {len(shape) - 1}-D ones")]


@pytest.mark.parametrize("attrs", [{}, {"stride": 2}, {"padding": (0, 1, 2, 1), "dilation": 2}, {"stride": (3, 2)}])
def test_the_declared_output_shape_is_the_schemas(attrs):
    node, graph = conv_node(**attrs)
    shape = cudnn_conv.output_shape((5, 4, 9, 11), (6, 4, 3, 3), node.attrs)
    assert shape == graph.node("conv").type.concrete(5)


def test_contiguous_strides_are_numpys_in_elements():
    a = np.empty((2, 3, 4, 5), np.float32)
    assert cudnn_conv.contiguous_strides(a.shape) == [s // a.itemsize for s in a.strides]


@pytest.mark.gpu
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.id == "cupy"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cudnn_convolutions_match_the_reference_on_the_gpu(backend, dtype):
    import cnngraph
    from cnngraph.backends import check

    pytest.importorskip("cudnn")
    x = dsl.input("x", (8, 12, 12))
    y = dsl.relu(dsl.conv2d(x, 16, 3, padding=1, name="conv"), name="act")
    graph = dsl.Model(x, dsl.conv2d(y, 4, 3, stride=2, padding=(0, 1, 1, 0), name="head"))
    model = cnngraph.compile(graph, backend=backend, dtype=dtype)
    assert set(model.kernels().values()) == {"cupy"}
    check.compare(model)  # within the backend's tolerance (TF32 for float32), node by node

"""Every op's backward against central finite differences in float64, over a table of attributes.

Gradients are checked w.r.t. every input element and every trainable parameter element.
"""

import numpy as np
import pytest

import cnngraph
from cnngraph.frontends import dsl
from tests.gradcheck import check_gradients
from tests.oracle import random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend

# (op, input shapes with the batch, attributes[, training]) -- small shapes: every element is perturbed
CASES = [
    ("Conv2d", [(2, 3, 6, 6)], dict(out_channels=4, kernel_size=3, padding=1)),
    ("Conv2d", [(2, 3, 6, 6)], dict(out_channels=4, kernel_size=3, stride=2, bias=False)),  # last row unused
    ("Conv2d", [(2, 4, 6, 5)], dict(out_channels=6, kernel_size=(3, 2), stride=(1, 2), padding=(2, 0, 1, 1),
                                    groups=2)),
    ("Conv2d", [(2, 4, 7, 7)], dict(out_channels=4, kernel_size=3, padding=2, dilation=2, groups=4)),  # depthwise
    ("Conv2d", [(2, 4, 5, 5)], dict(out_channels=3, kernel_size=1)),  # the 1x1 fast path
    ("Conv2d", [(2, 4, 6, 5)], dict(out_channels=6, kernel_size=3, padding=(1, 0, 2, 1), groups=2)),  # grouped, asym.
    ("Conv2d", [(2, 3, 4, 4)], dict(out_channels=2, kernel_size=1, padding=1)),  # p > d(k-1): the col2im path
    ("Conv2d", [(2, 2, 7, 8)], dict(out_channels=3, kernel_size=3, stride=2, padding="same")),
    ("Conv2d", [(2, 2, 9, 9)], dict(out_channels=2, kernel_size=(2, 3), stride=(3, 2), padding=(1, 2, 0, 1),
                                    dilation=(1, 2))),
    ("ConvTranspose2d", [(2, 3, 3, 3)], dict(out_channels=2, kernel_size=3)),
    ("ConvTranspose2d", [(2, 4, 3, 4)], dict(out_channels=2, kernel_size=4, stride=2, padding=1)),
    ("ConvTranspose2d", [(2, 4, 3, 3)], dict(out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1,
                                             groups=2)),
    ("ConvTranspose2d", [(2, 2, 3, 3)], dict(out_channels=3, kernel_size=(3, 2), stride=(3, 2),
                                             padding=(0, 1, 2, 0), output_padding=(2, 1))),
    ("ConvTranspose2d", [(2, 2, 4, 4)], dict(out_channels=2, kernel_size=3, dilation=2, output_padding=1)),
    ("ConvTranspose2d", [(2, 3, 4, 4)], dict(out_channels=2, kernel_size=1, bias=False)),
    ("Linear", [(3, 5)], dict(out_features=4)),
    ("Linear", [(3, 5)], dict(out_features=2, bias=False)),
    ("BatchNorm2d", [(3, 2, 3, 4)], dict(momentum=0.3)),
    ("BatchNorm2d", [(5, 3)], dict(eps=1e-3)),
    ("BatchNorm2d", [(2, 2, 3, 4)], {}, False),  # inference mode: running statistics
    ("BatchNorm2d", [(3, 4)], {}, False),
    ("LRN", [(2, 5, 3, 3)], dict(size=1)),
    ("LRN", [(2, 5, 3, 3)], dict(size=2, alpha=0.5, beta=0.6, k=2.0)),  # asymmetric window
    ("LRN", [(2, 5, 3, 3)], dict(size=3, alpha=1.0, beta=1.0, k=0.5)),
    ("LRN", [(2, 6, 2, 3)], dict(size=5, alpha=0.3)),
    ("ReLU", [(2, 3, 4)], {}),
    ("LeakyReLU", [(2, 3, 4)], dict(alpha=0.2)),
    ("LeakyReLU", [(2, 3, 4)], dict(alpha=-1.5)),
    ("ELU", [(2, 3, 4)], dict(alpha=0.7)),
    ("Clip", [(2, 3, 4)], dict(min=-0.5, max=0.8)),
    ("Clip", [(2, 3, 4)], {}),
    ("Sigmoid", [(2, 3, 4)], {}),
    ("Tanh", [(2, 3, 4)], {}),
    ("Softmax", [(2, 3, 4, 2)], {}),
    ("Softmax", [(2, 3, 4, 2)], dict(axis=-1)),
    ("LogSoftmax", [(2, 3, 4)], dict(axis=2)),
    ("LogSoftmax", [(3, 5)], {}),
    ("MaxPool2d", [(2, 2, 6, 6)], dict(kernel_size=2)),
    ("MaxPool2d", [(2, 2, 7, 7)], dict(kernel_size=3, stride=2, padding=1)),  # overlapping windows
    ("MaxPool2d", [(2, 2, 7, 7)], dict(kernel_size=3, stride=2, ceil_mode=True)),  # a clipped last window
    ("MaxPool2d", [(2, 2, 8, 7)], dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0, 0, 1), ceil_mode=True)),
    ("MaxPool2d", [(2, 2, 9, 9)], dict(kernel_size=3, stride=(1, 2), padding=(2, 1, 2, 1), dilation=2)),
    ("MaxPool2d", [(2, 2, 5, 5)], dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    ("AvgPool2d", [(2, 2, 6, 6)], dict(kernel_size=2)),
    ("AvgPool2d", [(2, 2, 7, 7)], dict(kernel_size=3, stride=2, padding=1)),
    ("AvgPool2d", [(2, 2, 7, 7)], dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("AvgPool2d", [(2, 2, 7, 6)], dict(kernel_size=(3, 2), stride=2, padding=(1, 0, 1, 0), ceil_mode=True,
                                       count_include_pad=False)),
    ("AvgPool2d", [(2, 2, 7, 7)], dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("GlobalAvgPool", [(2, 3, 4, 5)], {}),
    ("AdaptiveAvgPool2d", [(2, 2, 7, 5)], dict(output_size=(3, 2))),  # overlapping cells
    ("AdaptiveAvgPool2d", [(2, 2, 4, 6)], dict(output_size=(2, 3))),
    ("AdaptiveAvgPool2d", [(2, 2, 3, 3)], dict(output_size=1)),
    ("Upsample", [(2, 2, 3, 4)], dict(scale_factor=2)),
    ("Upsample", [(2, 2, 3, 4)], dict(size=(5, 7))),
    ("Upsample", [(2, 2, 3, 4)], dict(scale_factor=2, mode="bilinear")),
    ("Upsample", [(2, 2, 3, 4)], dict(size=(5, 7), mode="bilinear", align_corners=True)),
    ("Upsample", [(2, 2, 5, 7)], dict(size=(2, 3), mode="bilinear")),  # downsampling
    ("Upsample", [(2, 2, 3, 4)], dict(scale_factor=1.5, mode="bilinear")),
    ("Upsample", [(2, 2, 3, 4)], dict(scale_factor=(2.5, 1.0), mode="nearest")),
    ("Flatten", [(2, 3, 2, 2)], {}),
    ("Reshape", [(2, 3, 4)], dict(shape=(4, -1))),
    ("Add", [(2, 3, 4, 4), (2, 3, 4, 4)], {}),
    ("Add", [(2, 3, 4, 4), (2, 3, 1, 1), (2, 1, 4, 4)], {}),  # broadcasting: summed back over broadcast axes
    ("Add", [(2, 1, 1, 4), (2, 3, 4, 1)], {}),  # both sides broadcast
    ("Mul", [(2, 3, 4, 4), (2, 3, 1, 1)], {}),
    ("Mul", [(2, 3, 4), (2, 3, 4)], {}),
    ("Concat", [(2, 1, 3, 3), (2, 3, 3, 3), (2, 2, 3, 3)], {}),
    ("Concat", [(2, 2, 3, 2), (2, 2, 1, 2)], dict(axis=2)),
    ("Concat", [(2, 2, 3), (2, 2, 4)], dict(axis=-1)),
    ("Transpose", [(2, 3, 4, 2)], dict(perm=(0, 2, 3, 1))),
    ("Slice", [(2, 3, 6, 6)], dict(axes=(2, 3), starts=(1, 0), ends=(5, 6), steps=(2, 3))),
    ("Slice", [(2, 5, 3)], dict(axes=(1,), starts=(-2,), ends=(100,))),
    ("Pad", [(2, 2, 3, 4)], dict(padding=(1, 2, 0, 1), value=1.5)),
    ("Pad", [(2, 2, 4, 4)], dict(padding=(2, 1, 1, 3), mode="reflect")),
    ("Pad", [(2, 2, 3, 3)], dict(padding=(3, 0, 1, 2), mode="edge")),
    ("Dropout", [(2, 3, 4)], dict(p=0.0)),
    ("Dropout", [(2, 3, 4)], dict(p=0.5), False),  # inference: the identity
    ("Identity", [(2, 3)], {}),
]


def _case_id(case) -> str:
    op, shapes, attrs = case[:3]
    mode = "" if len(case) == 3 else "-inference"
    return f"{op}{mode}-" + "-".join(f"{k}={v}" for k, v in attrs.items())


def one_op_graph(op, shapes, attrs, seed=0):
    """A one-node graph over random inputs; BatchNorm gets non-trivial parameters and running statistics."""
    tensors = [dsl.input(f"in{i}", s[1:]) for i, s in enumerate(shapes)]
    graph = dsl.Model(tensors, dsl.layer(op, tensors, name="op", **attrs), seed=seed)
    for key, value in graph.params.items():
        drawn = random(value.shape, seed + 7)
        graph.params[key] = np.abs(drawn) + 0.5 if key.endswith("running_var") else drawn
    inputs = {f"in{i}": random(s, seed + i) for i, s in enumerate(shapes)}
    return graph, inputs


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_backward_matches_finite_differences(case):
    op, shapes, attrs, *mode = case
    graph, inputs = one_op_graph(op, shapes, attrs)
    check_gradients(graph, inputs, training=mode[0] if mode else True)


CONVOLUTIONS = [case for case in CASES if case[0] in ("Conv2d", "ConvTranspose2d")]


@pytest.mark.parametrize("case", CONVOLUTIONS, ids=[_case_id(c) for c in CONVOLUTIONS])
def test_weight_gradients_summed_one_image_at_a_time(case, monkeypatch):
    """The weight gradient's GEMM runs per chunk of images and adds the chunks (conv.CHUNK_BYTES); with one
    image per chunk the sum still matches finite differences."""
    from cnngraph.backends.kernels import conv

    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    op, shapes, attrs = case[:3]
    graph, inputs = one_op_graph(op, shapes, attrs)
    check_gradients(graph, inputs)


PASSES_IN_CHUNKS = [case for case in CASES if case[0] in ("MaxPool2d", "BatchNorm2d", "ReLU")]


@pytest.mark.parametrize("case", PASSES_IN_CHUNKS, ids=[_case_id(c) for c in PASSES_IN_CHUNKS])
def test_passes_one_image_or_channel_at_a_time(case, monkeypatch):
    """Max pooling and ReLU's gradient (by images) and BatchNorm (by channels) run their passes per chunk
    (chunks.PASS_CHUNK_BYTES)."""
    from cnngraph.backends import chunks

    monkeypatch.setattr(chunks, "PASS_CHUNK_BYTES", 1)
    op, shapes, attrs = case[:3]
    graph, inputs = one_op_graph(op, shapes, attrs)
    check_gradients(graph, inputs, training=case[3] if len(case) > 3 else True)


def test_dropout_backward_uses_the_forward_mask():
    """Given its mask the output is linear in x, so dL/dx = G * out / x exactly: no mask is drawn twice."""
    graph, inputs = one_op_graph("Dropout", [(4, 6, 5)], dict(p=0.4))
    inputs["in0"] += np.sign(inputs["in0"])  # far from 0: out / x is the scaled mask
    model = cnngraph.compile(graph, dtype="float64", train=True, seed=3)
    out = model.forward(inputs, input_grads=True)["op"]
    g = random(out.shape, 9)
    model.backward({"op": g})
    dropped = out == 0
    assert 0.2 < dropped.mean() < 0.6
    np.testing.assert_allclose(model.input_grads["in0"], g * out / inputs["in0"], rtol=1e-12)
    np.testing.assert_array_equal(model.input_grads["in0"] == 0, dropped)

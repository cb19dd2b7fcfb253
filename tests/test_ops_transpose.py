"""Transpose against onnx.reference, its errors, its view, and its gradient against finite differences."""

import numpy as np
import pytest

from cnngraph.backends.kernels import RunContext, get_kernel
from cnngraph.errors import AttrError
from cnngraph.frontends import dsl
from cnngraph.ir import TensorType
from cnngraph.ops import get_op
from tests.gradcheck import check_gradients
from tests.oracle import cnngraph_op, onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend


@pytest.mark.parametrize("shape,perm", [
    ((2, 3, 4, 5), (0, 2, 3, 1)),  # NCHW -> NHWC
    ((2, 3, 4, 5), (0, 3, 1, 2)),
    ((2, 4, 3, 5, 2), (0, 2, 1, 3, 4)),  # a channel shuffle's middle step
    ((2, 6), (0, 1)),
])
def test_transpose_matches_reference(shape, perm):
    x = random(shape)
    np.testing.assert_array_equal(cnngraph_op("Transpose", [x], {"perm": perm}),
                                  onnx_reference("Transpose", [x], {"perm": list(perm)}))


@pytest.mark.parametrize("perm,match", [
    ((1, 0, 2, 3), r"layer 'op' \(Transpose\): perm must keep the batch axis first, got \(1, 0, 2, 3\)"),
    ((0, 1, 1, 3), "perm must order the axes 0..3 once each"),
    ((0, 2, 1), "perm must have 4 values"),
])
def test_transpose_errors(perm, match):
    with pytest.raises(AttrError, match=match):
        cnngraph_op("Transpose", [random((1, 3, 4, 5))], {"perm": perm})


def test_transpose_kernel_returns_a_view():
    x = random((2, 3, 4, 5))
    attrs = get_op("Transpose").normalize("op", {"perm": [0, 3, 1, 2]}, [TensorType(("N", 3, 4, 5))])
    assert attrs == {"perm": (0, 3, 1, 2)}
    assert np.shares_memory(get_kernel("Transpose")(np, [x], {}, attrs, RunContext()), x)


def test_transpose_gradient():
    x = dsl.input("x", (3, 2, 4))
    graph = dsl.Model(x, dsl.layer("Transpose", [x], perm=(0, 3, 1, 2)))
    check_gradients(graph, {"x": random((2, 3, 2, 4))})


def test_a_region_list_may_move_its_leading_axis():
    """(R, C, 4) boxes per region to (C, R, 4) per class: R is not the batch, so it may leave axis 0; the
    export is a plain ONNX Transpose that onnxruntime runs with the same numbers."""
    import cnngraph
    from cnngraph.backends.onnx_export import to_onnx
    from tests.onnx_models import onnxruntime_run

    boxes = dsl.input("boxes", (2, 4), leading="R")
    moved = dsl.layer("Transpose", [boxes], perm=(1, 0, 2), name="by_class")
    assert moved.shape == (2, "R", 4)
    graph = dsl.Model(boxes, moved)
    x = random((5, 2, 4)).astype(np.float32)
    got = cnngraph.compile(graph).run({"boxes": x}, to_host=True)["by_class"]
    np.testing.assert_array_equal(got, x.transpose(1, 0, 2))
    np.testing.assert_array_equal(onnxruntime_run(to_onnx(graph), {"boxes": x})[0], got)

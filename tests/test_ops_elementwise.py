"""Add and Mul against onnx.reference, and broadcasting rules for the symbolic batch."""

import numpy as np
import pytest

from cnngraph.errors import ShapeError
from cnngraph.frontends import dsl
from cnngraph.ir import TensorType
from cnngraph.ops import get_op
from tests.oracle import cnngraph_op, onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend




SHAPES = [
    [(2, 3, 4, 5), (2, 3, 4, 5)],
    [(2, 3, 4, 5), (2, 3, 1, 1)],  # per-channel
    [(2, 1, 4, 5), (2, 3, 1, 1)],  # both sides grow
    [(2, 3, 1, 5), (2, 1, 4, 1)],
    [(3, 6), (3, 1)],
]


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("op,onnx_op", [("Add", "Add"), ("Mul", "Mul")])
def test_binary_matches_reference(op, onnx_op, shapes):
    xs = [random(s, i) for i, s in enumerate(shapes)]
    np.testing.assert_allclose(cnngraph_op(op, xs), onnx_reference(onnx_op, xs), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("shapes", [
    [(2, 3, 4, 5), (2, 3, 1, 1), (2, 1, 4, 5)],  # each later input fits the running sum: accumulated in place
    [(2, 1, 1, 1), (2, 1, 1, 1), (2, 3, 4, 5)],  # the last input grows the sum
    [(2, 4), (2, 4), (2, 1), (2, 4), (2, 4)],
])
def test_add_many_matches_sum(shapes):
    xs = [random(s, i) for i, s in enumerate(shapes)]
    np.testing.assert_allclose(cnngraph_op("Add", xs), onnx_reference("Sum", xs), rtol=1e-14, atol=1e-15)


def test_mismatch_names_layer_and_shapes():
    a, b = dsl.input("a", (64, 56, 56)), dsl.input("b", (128, 28, 28))
    with dsl.scope("layer1"), dsl.scope(0):
        with pytest.raises(ShapeError, match=r"^layer 'layer1\.0\.add' \(Add\): cannot add shapes "
                                             r"\(N, 64, 56, 56\) and \(N, 128, 28, 28\)$"):
            dsl.add(a, b, name="add")


def test_mismatch_of_three_lists_all_shapes():
    xs = [dsl.input(f"x{i}", s) for i, s in enumerate([(4, 8, 8), (4, 1, 1), (2, 8, 8)])]
    with pytest.raises(ShapeError, match=r"cannot add shapes \(N, 4, 8, 8\), \(N, 4, 1, 1\) and \(N, 2, 8, 8\)"):
        dsl.add(*xs)


def test_mul_message_and_arity():
    a, b = dsl.input("a", (3, 4)), dsl.input("b", (5, 4))
    with pytest.raises(ShapeError, match=r"\(Mul\): cannot multiply shapes \(N, 3, 4\) and \(N, 5, 4\)"):
        dsl.mul(a, b)
    with pytest.raises(ShapeError, match=r"\(Mul\): takes 2 inputs, got 3"):
        dsl.layer("Mul", [a, a, a])
    with pytest.raises(ShapeError, match=r"\(Add\): takes 2 to 64 inputs, got 1"):
        dsl.layer("Add", [a])


@pytest.mark.parametrize("shapes,out", [
    ([("N", 3, 4), (1, 3, 4)], ("N", 3, 4)),  # a batch of 1 broadcasts against N
    ([("N", 3, 4), ("N", 1, 4)], ("N", 3, 4)),
    ([("N", 3, 4), ("N", 3, 4), (1, 1, 1)], ("N", 3, 4)),
    ([("N", 3, 4), (2, 3, 4)], None),  # a concrete batch other than 1 may not meet N
    ([("N", 4), ("N", 1, 4)], None),  # ranks differ: N would land on axis 1
])
def test_batch_broadcasting(shapes, out):
    types = [TensorType(s) for s in shapes]
    if out is None:
        with pytest.raises(ShapeError, match="cannot add shapes"):
            get_op("Add").infer("op", {}, types)
    else:
        assert get_op("Add").infer("op", {}, types) == TensorType(out)


def test_macs_count_multiplies_only():
    types = [TensorType(("N", 3, 4, 5)), TensorType(("N", 3, 1, 1))]
    out = TensorType(("N", 3, 4, 5))
    assert get_op("Mul").macs({}, types, out) == 60
    assert get_op("Add").macs({}, types, out) == 0

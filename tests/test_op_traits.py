"""Op traits agree with behaviour: the memory plan, the passes and the executor do with an op exactly
what its ``activation``, ``in_place``, ``random`` and ``writes_into`` flags say, and the flags are true
of the op (an in-place op is element-wise, a random op draws anew each training run)."""

import numpy as np
import pytest

import cnngraph
from cnngraph import optimize
from cnngraph.concat_layout import layout
from cnngraph.errors import AttrError
from cnngraph.frontends import dsl
from cnngraph.memory import plan
from cnngraph.ops import get_op, ops_with

# The traits are checked on standard-normal inputs: Log and Sqrt of the negative ones are NaN on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

# Single-input ops applied to a (N, 4, 6, 6) image, with their attributes: every op that has one of the
# traits, and ops of each other kind (softmax, regularisation, normalisation, pooling, convolution).
UNARY = {
    "ReLU": {}, "LeakyReLU": {"alpha": 0.2}, "ELU": {"alpha": 0.5}, "Clip": {"min": -1.0, "max": 2.0},
    "Sigmoid": {}, "Tanh": {}, "Softmax": {}, "LogSoftmax": {}, "Dropout": {"p": 0.5}, "Identity": {},
    "BatchNorm2d": {}, "LRN": {"size": 3}, "MaxPool2d": {"kernel_size": 3, "stride": 1, "padding": 1},
    "Conv2d": {"out_channels": 4, "kernel_size": 3, "padding": 1},
    "HardSigmoid": {}, "HardSwish": {}, "SiLU": {}, "GELU": {}, "Mish": {}, "Selu": {}, "Softplus": {},
    "Softsign": {}, "Exp": {}, "Log": {}, "Neg": {}, "Abs": {}, "Sqrt": {}, "Reciprocal": {}, "Erf": {},
    "PReLU": {"num_parameters": 4},
}


def apply(op, x, name):
    return dsl.layer(op, [x], name, **UNARY[op])


def feeds(seed=0):
    return np.random.default_rng(seed).standard_normal((2, 4, 6, 6))


def test_every_op_with_a_trait_is_exercised():
    assert {*ops_with("activation"), *ops_with("in_place"), *ops_with("random")} <= set(UNARY)


@pytest.mark.parametrize("op", UNARY)
def test_the_memory_plan_runs_exactly_the_in_place_ops_in_place(op):
    x = dsl.input("x", (4, 6, 6))
    y = apply(op, dsl.conv2d(x, 4, 3, padding=1, name="src"), "y")  # src dies at y
    assert ("y" in plan(dsl.Model(x, y), batch=2).in_place) == get_op(op).in_place


@pytest.mark.parametrize("op", ops_with("in_place"))
def test_in_place_ops_are_element_wise(op):
    """Overwriting the input is safe only if each output element reads its own input element alone."""
    x = dsl.input("x", (4, 6, 6))
    model = cnngraph.compile(dsl.Model(x, apply(op, x, "y")), dtype="float64", passes="none")
    a, b = feeds(), feeds()
    a[1, 2, 3, 4], b[1, 2, 3, 4] = 0.25, 0.75  # where every activation here is strictly monotonic
    ya, yb = model(a), model(b)
    differ = ~((ya == yb) | (np.isnan(ya) & np.isnan(yb)))  # Log and Sqrt of negative inputs are NaN in both
    assert np.argwhere(differ).tolist() == [[1, 2, 3, 4]]


@pytest.mark.parametrize("op", UNARY)
def test_activation_fusion_fuses_exactly_the_activation_ops(op):
    x = dsl.input("x", (3, 6, 6))
    g = dsl.Model(x, apply(op, dsl.conv2d(x, 4, 3, padding=1, name="conv"), "y"))
    opt, _ = optimize(g, ["activation_fusion"], check=True)  # check: the fused graph computes the same
    assert (opt.node("y").op == "FusedConv2d") == get_op(op).activation
    x = dsl.input("x", (3, 6, 6))
    if get_op(op).activation:
        dsl.layer("FusedConv2d", [x], out_channels=4, kernel_size=3, activation=op)
    else:
        with pytest.raises(AttrError, match="activation must be one of"):
            dsl.layer("FusedConv2d", [x], out_channels=4, kernel_size=3, activation=op)


@pytest.mark.parametrize("op", UNARY)
def test_random_ops_draw_anew_and_are_never_merged_or_folded_in_training(op):
    random = get_op(op).random
    x = dsl.input("x", (4, 6, 6))
    model = cnngraph.compile(dsl.Model(x, apply(op, x, "y"), training=True), train=True, passes="none")
    assert (not np.array_equal(model.forward(feeds())["y"], model.forward(feeds())["y"], equal_nan=True)) == random
    twins = dsl.Model(x, dsl.add(apply(op, x, "a"), apply(op, x, "b")), training=True)
    merged = "b" not in {n.name for n in optimize(twins, ["cse"])[0].nodes}
    assert merged == (not random and not twins.node("a").params)  # layers with weights never merge in training
    folded = dsl.Model(x, dsl.add(x, apply(op, dsl.constant(feeds()[:1]), "y")), training=True)
    assert (optimize(folded, ["constant_folding"])[0].node("y").op == "Constant") == (not random)


def test_concat_elision_places_exactly_the_writes_into_producers():
    x = dsl.input("x", (4, 6, 6))
    fused = dsl.relu(dsl.conv2d(x, 4, 3, padding=1, name="fused"))  # FusedConv2d after activation_fusion
    g = dsl.Model(x, dsl.flatten(dsl.concat([fused, *(apply(op, x, op.lower()) for op in UNARY)])))
    # check: the executor runs the placed producers into their slices (it fails if a kernel does not) and
    # the result is what the plain Concat gives
    opt, _ = optimize(g, ["activation_fusion", "concat_elision"], check=True)
    (concat,) = [n for n in opt.nodes if n.op == "Concat"]
    writers = {v for v in concat.inputs if get_op(opt.node(v).op).writes_into}
    assert set(layout(opt).placed) == writers
    assert {opt.node(v).op for v in writers} == set(ops_with("writes_into"))

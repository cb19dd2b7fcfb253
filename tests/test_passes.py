"""Graph passes: each one's numbers against the unoptimised graph, and each precondition that must
make it skip (the cases where other tools have shipped wrong answers)."""

import json

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.frontends import dsl
from cnngraph import optimize
from cnngraph.passes import DEFAULT, Outcome, _PASSES
from cnngraph.passes.manager import PassCheckError


# Pass equivalence is checked in float64 on float64 parameters (passes store folded parameters in the
# parameters' dtype, so float32 would add 1e-7 relative rounding that hides small bugs). RTOL = 1e-9 is
# float64 rounding through a few layers with room to spare; the bugs it is there to catch are far larger:
# bn_folding dropping eps moves outputs by 5e-6 relative at running variance 1, 5 % at 1e-4; a wrong fold
# or a fused consumer that should not have been moves them by 1e-2 and more.
RTOL = 1e-9
# A pass that fired where its precondition says it must not changes outputs by far more than this.
WRONG = 1e-3


def float64_params(graph):
    """The graph with every floating-point parameter in float64 (in place), for tight equivalence checks."""
    for key, value in graph.params.items():
        if np.issubdtype(value.dtype, np.floating):
            graph.params[key] = value.astype(np.float64)
    return graph


def randomize_bn(graph, seed=0):
    """Non-trivial BN statistics in float64, so folding is actually exercised: running variances spread
    log-uniformly over [1e-4, 1e4] (with 1e-4 and 1e4 themselves present), where dropping or misplacing
    eps is a visible error. gamma grows with sqrt(var), so each BN's scale stays near 1 and fifty of them
    in a row (ResNet-50) neither overflow nor vanish."""
    rng = np.random.default_rng(seed)
    float64_params(graph)
    for node in graph.nodes:
        if node.op == "BatchNorm2d":
            p = {role: node.params[role] for role in ("weight", "bias", "running_mean", "running_var")}
            var = 10.0 ** rng.uniform(-4, 4, graph.params[p["running_var"]].shape)
            var[:2] = 1e-4, 1e4
            graph.params[p["running_var"]] = var
            graph.params[p["weight"]] = rng.normal(0, 1, var.shape) * np.sqrt(var)
            for role in ("bias", "running_mean"):
                graph.params[p[role]] = rng.normal(0, 1, var.shape)
    return graph


def run_both(a, b, batch=3, seed=0, train=False):
    """Both graphs' outputs on the same random inputs, in float64 (a training forward if ``train``)."""
    rng = np.random.default_rng(seed)
    feeds = {k: rng.standard_normal(t.concrete(batch)) for k, t in a.inputs.items()}
    if train:
        return [cnngraph.compile(g, dtype="float64", passes="none", train=True).forward(feeds) for g in (a, b)]
    return [cnngraph.compile(g, dtype="float64", passes="none").run(feeds) for g in (a, b)]


def same_outputs(a, b, rtol=RTOL, batch=3, seed=0):
    want, got = run_both(a, b, batch, seed)
    assert want.keys() == got.keys()
    for k in want:
        # per element: a channel that BN scales by 1e-2 must be as exact as one it scales by 1e2
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=rtol * 1e-3 * np.abs(want[k]).max())


def largest_change(a, b, train=False):
    """The largest relative change of any output between two graphs (same inputs, float64)."""
    want, got = run_both(a, b, train=train)
    return max(float(np.abs(got[k] - want[k]).max() / np.abs(want[k]).max()) for k in want)


def skipped(reports, name):
    return [why for r in reports if r.name == name for _, why in r.outcome.skipped]


def ops(graph):
    return [n.op for n in graph.nodes]


@pytest.mark.parametrize("kind", ["conv", "conv_nobias", "depthwise", "grouped_transpose", "linear"])
def test_bn_folding_is_exact(kind):
    x = dsl.input("x", (4, 6, 6) if kind != "linear" else (12,))
    if kind == "conv":
        y = dsl.conv2d(x, 8, 3, padding=1)
    elif kind == "conv_nobias":
        y = dsl.conv2d(x, 8, 3, stride=2, bias=False)
    elif kind == "depthwise":
        y = dsl.conv2d(x, 4, 3, groups=4, padding=1)
    elif kind == "grouped_transpose":
        y = dsl.conv_transpose2d(x, 6, 3, stride=2, groups=2)
    else:
        y = dsl.linear(x, 5)
    g = randomize_bn(dsl.Model(x, dsl.relu(dsl.batch_norm(y))))
    opt, reports = optimize(g, ["bn_folding"])
    assert "BatchNorm2d" not in ops(opt), skipped(reports, "bn_folding")
    same_outputs(g, opt)


def _conv_bn(extra_consumer=False, training=False, bn_is_output=False):
    x = dsl.input("x", (3, 6, 6))
    c = dsl.conv2d(x, 4, 3, name="conv")
    b = dsl.batch_norm(c, name="bn")
    outs = [b if bn_is_output else dsl.relu(b)]
    if extra_consumer:
        outs.append(dsl.sigmoid(c))
    return randomize_bn(dsl.Model(x, outs, training=training))


@pytest.mark.parametrize("case,reason", [
    (dict(extra_consumer=True), "'conv' has 2 consumers"),
    (dict(training=True), "built for training"),
    (dict(bn_is_output=True), "BatchNorm is a graph output"),
])
def test_bn_folding_skips_with_reason(case, reason):
    g = _conv_bn(**case)
    opt, reports = optimize(g, ["bn_folding"])
    assert "BatchNorm2d" in ops(opt)
    assert any(reason in why for why in skipped(reports, "bn_folding"))
    same_outputs(g, opt)


def test_bn_folding_skips_shared_weights_and_non_conv_producers():
    x = dsl.input("x", (3, 6, 6))
    a = dsl.batch_norm(dsl.conv2d(x, 3, 3, padding=1, name="a"), name="bn_a")
    b = dsl.conv2d(x, 3, 3, padding=1, name="b")
    after_relu = dsl.batch_norm(dsl.relu(b), name="bn_b")
    g = randomize_bn(dsl.Model(x, dsl.add(a, after_relu)))
    g.node("b").params = dict(g.node("a").params)  # b now shares a's weights
    del g.params["b.weight"], g.params["b.bias"]
    opt, reports = optimize(g, ["bn_folding"])
    reasons = skipped(reports, "bn_folding")
    assert any("weights 'a.weight' are shared" in r for r in reasons)
    assert any("follows ReLU" in r for r in reasons)
    same_outputs(g, opt)


@pytest.mark.parametrize("act", [dsl.relu, dsl.sigmoid, dsl.tanh, lambda t: dsl.leaky_relu(t, 0.2),
                                 lambda t: dsl.elu(t, 0.5), lambda t: dsl.clip(t, -1.0, 2.0)])
def test_activation_fusion_for_every_activation(act):
    x = dsl.input("x", (3, 6, 6))
    y = act(dsl.conv2d(x, 4, 3))
    g = dsl.Model(x, dsl.linear(dsl.flatten(y), 3))
    opt, _ = optimize(g, ["activation_fusion"])
    assert ops(opt)[0] == "FusedConv2d"
    assert opt.outputs == g.outputs
    same_outputs(g, opt)


def test_fusion_keeps_output_names_and_respects_other_consumers():
    x = dsl.input("x", (3, 6, 6))
    c = dsl.conv2d(x, 4, 3, name="conv")
    g = dsl.Model(x, [dsl.relu(c, name="out"), dsl.tanh(dsl.conv2d(x, 4, 3, name="c2"), name="t")])
    opt, _ = optimize(g, ["activation_fusion"])
    assert opt.outputs == ["out", "t"] and ops(opt) == ["FusedConv2d", "FusedConv2d"]
    same_outputs(g, opt)
    g2 = dsl.Model(x, [dsl.relu(c), c])
    opt2, reports = optimize(g2, ["activation_fusion"])
    assert "ReLU" in ops(opt2) and any("graph output" in r for r in skipped(reports, "activation_fusion"))


def test_residual_fusion_on_resnet_blocks():
    g = randomize_bn(models.build("resnet18", input_size=32, num_classes=5))
    opt, reports = optimize(g)
    assert "Add" not in ops(opt) and "BatchNorm2d" not in ops(opt) and "ReLU" not in ops(opt)
    fused = [n for n in opt.nodes if n.op == "FusedConv2d" and n.attrs["residual"]]
    assert len(fused) == 8 and all(n.attrs["activation"] == "ReLU" for n in fused)
    same_outputs(g, opt)


def test_residual_fusion_skips_broadcasting_adds():
    x = dsl.input("x", (4, 6, 6))
    c = dsl.conv2d(x, 4, 3, padding=1)
    bias = dsl.global_avg_pool(x)
    g = dsl.Model(x, dsl.relu(dsl.add(c, bias)))
    opt, reports = optimize(g, ["residual_fusion"])
    assert "Add" in ops(opt) and "the add broadcasts" in skipped(reports, "residual_fusion")
    same_outputs(g, opt)


def test_cse_dead_code_and_identity_removal():
    x = dsl.input("x", (3, 6, 6))
    a, b = dsl.relu(x), dsl.relu(x)  # the same value twice
    unused = dsl.sigmoid(dsl.conv2d(x, 3, 3, padding=1, name="unused"))
    y = dsl.tanh(dsl.identity(dsl.dropout(dsl.add(a, b), 0.3)), name="y")
    g = dsl.Model(x, [y, unused])
    g.outputs = ["y"]  # the branch through "unused" is now dead
    opt, reports = optimize(g, ["cse", "identity_removal", "dead_code"])
    assert ops(opt) == ["ReLU", "Add", "Tanh"] and "unused.weight" not in opt.params
    same_outputs(g, opt)


def test_check_names_the_first_pass_that_changes_numbers(monkeypatch):
    def broken(graph, ctx):
        key = next(iter(graph.params))
        graph.params[key] = graph.params[key] * 1.5
        return Outcome(["scaled a weight"])

    monkeypatch.setitem(_PASSES, "broken", broken)
    g = models.build("lenet5")
    optimize(g, ["dead_code", "activation_fusion"], check=True)
    with pytest.raises(PassCheckError, match="pass 'broken' changed output 'output'"):
        optimize(g, ["dead_code", "broken", "activation_fusion"], check=True)


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg16_bn", "resnet50"])
def test_default_pipeline_on_zoo_models_and_its_onnx_export(name):
    pytest.importorskip("onnxruntime")
    from cnngraph.backends.onnx_export import to_onnx
    from cnngraph.backends.onnx_verify import verify

    g = randomize_bn(models.build(name, input_size=32 if name == "lenet5" else 64, num_classes=10))
    opt, reports = optimize(g, "default")
    assert [r.name for r in reports] == DEFAULT
    assert "BatchNorm2d" not in ops(opt) and "Dropout" not in ops(opt)
    assert len(opt.nodes) < len(g.nodes)
    same_outputs(g, opt, batch=2)
    assert verify(opt, to_onnx(opt), batches=(1, 3)).ok  # fused ops export as standard ONNX


def test_cse_never_merges_trainable_layers_in_training():
    x = dsl.input("x", (3, 6, 6))
    a, b = dsl.batch_norm(x, name="a"), dsl.batch_norm(x, name="b")  # equal at initialisation
    g = dsl.Model(x, dsl.add(a, b), training=True)
    opt, _ = optimize(g, "default")
    assert {"a", "b"} <= {n.name for n in opt.nodes}
    opt_inference, _ = optimize(dsl.Model(x, dsl.add(a, b)), ["cse"])
    assert [n.op for n in opt_inference.nodes].count("BatchNorm2d") == 1


def test_constant_folding_computes_constant_subgraphs_once():
    x = dsl.input("x", (3, 4, 4))
    scale = dsl.mul(dsl.constant(np.full((1, 3, 1, 1), 2.0)), dsl.constant(np.arange(3.0).reshape(1, 3, 1, 1)),
                    name="scale")
    g = dsl.Model(x, dsl.mul(x, scale))
    opt, reports = optimize(g, ["constant_folding", "dead_code"])
    assert ops(opt) == ["Constant", "Mul"] and opt.node("scale").op == "Constant"
    np.testing.assert_array_equal(opt.params["scale.value"].reshape(-1), [0.0, 2.0, 4.0])
    same_outputs(g, opt)


def test_scale_folding_absorbs_a_batchnorm_exported_as_scale_and_shift():
    x = dsl.input("x", (3, 6, 6))
    rng = np.random.default_rng(0)
    y = dsl.conv2d(x, 4, 3, bias=False, name="conv")
    y = dsl.add(dsl.mul(y, dsl.constant(rng.normal(size=(4, 1, 1)))), dsl.constant(rng.normal(size=(1, 4, 1, 1))))
    z = dsl.linear(dsl.flatten(dsl.relu(y)), 5, name="fc")
    z = dsl.mul(dsl.constant(rng.normal(size=(5,))), z)  # constant first, rank 1: still per channel
    g = float64_params(dsl.Model(x, dsl.sigmoid(z)))
    opt, reports = optimize(g, ["scale_folding", "dead_code"])
    assert "Mul" not in ops(opt) and "Add" not in ops(opt) and "Constant" not in ops(opt)
    same_outputs(g, opt)


@pytest.mark.parametrize("shape,why", [((1, 4, 6, 1), "does not broadcast per output channel"),
                                       ((1, 6), "does not broadcast per output channel")])
def test_scale_folding_skips_constants_that_are_not_per_channel(shape, why):
    x = dsl.input("x", (3, 8, 8))
    y = dsl.conv2d(x, 4, 3, name="conv")
    g = dsl.Model(x, dsl.relu(dsl.mul(y, dsl.constant(np.random.default_rng(1).normal(size=shape)))))
    opt, reports = optimize(g, ["scale_folding"])
    assert "Mul" in ops(opt) and any(why in r for r in skipped(reports, "scale_folding"))
    same_outputs(g, opt)


# -- every precondition, and what firing anyway would do ---------------------------------------------
# Each test checks the pass skips with its reason and keeps the numbers (RTOL), then makes the pass fire
# anyway (its precondition monkeypatched off, or the rewrite applied by hand) and checks the outputs
# move by more than WRONG: the precondition is what stands between the pass and a wrong answer.
from cnngraph.passes import activation_fusion, bn_folding, cse, residual_fusion, scale_folding  # noqa: E402


def never(*args):
    """A precondition check monkeypatched to find no reason to skip."""
    return None


def _conv_with_second_consumer(after):
    """conv -> after(conv, x) -> out, and the conv's value read again by sigmoid: the second consumer."""
    x = dsl.input("x", (4, 6, 6))
    c = dsl.conv2d(x, 4, 3, padding=1, name="conv")
    first = after(c, x)
    return float64_params(dsl.Model(x, [first, dsl.sigmoid(c, name="other")]))


# What each fusion absorbs after the conv (neither ends in a graph output the fused node would rename).
FUSIONS = [("residual_fusion", lambda c, x: dsl.relu(dsl.add(c, x)), residual_fusion),
           ("activation_fusion", lambda c, x: dsl.add(dsl.relu(c), x), activation_fusion)]


@pytest.mark.parametrize("name,after,module", FUSIONS)
def test_fusion_with_a_second_consumer_of_the_conv(monkeypatch, name, after, module):
    g = _conv_with_second_consumer(after)
    opt, reports = optimize(g, [name])
    assert "'conv' has 2 consumers" in skipped(reports, name)
    same_outputs(g, opt)
    monkeypatch.setattr(module, "sole_consumer", never)
    wrong, _ = optimize(g, [name])
    assert largest_change(g, wrong) > WRONG  # 'other' now reads the fused value, not the conv's


@pytest.mark.parametrize("name,after,module", FUSIONS)
def test_fusion_into_a_conv_that_is_a_graph_output(monkeypatch, name, after, module):
    x = dsl.input("x", (4, 6, 6))
    c = dsl.conv2d(x, 4, 3, padding=1, name="conv")
    g = float64_params(dsl.Model(x, [after(c, x), c]))
    opt, reports = optimize(g, [name])
    assert any("'conv' is a graph output" in r for r in skipped(reports, name))
    same_outputs(g, opt)
    monkeypatch.setattr(module, "sole_consumer", never)
    wrong, _ = optimize(g, [name])
    assert largest_change(g, wrong) > WRONG


def test_residual_fusion_skips_a_conv_whose_activation_comes_before_the_add():
    x = dsl.input("x", (4, 6, 6))
    g = float64_params(dsl.Model(x, dsl.add(dsl.tanh(dsl.conv2d(x, 4, 3, padding=1, name="conv")), x)))
    fused, _ = optimize(g, ["activation_fusion"])
    opt, reports = optimize(fused, ["residual_fusion"])
    assert any("applies its activation before the add" in r for r in skipped(reports, "residual_fusion"))
    same_outputs(g, opt)
    add = next(n for n in fused.nodes if n.op == "Add")
    residual_fusion._merge(fused, fused.node("conv"), "x", add)  # by hand: tanh(conv + x), not tanh(conv) + x
    assert largest_change(g, fused) > WRONG


def _shared_weights(tail):
    """Two convs reading one weight tensor, each followed by ``tail`` (which a pass would fold)."""
    x = dsl.input("x", (3, 6, 6))
    a = tail(dsl.conv2d(x, 3, 3, padding=1, name="a"), "ta")
    b = tail(dsl.conv2d(x, 3, 3, padding=1, name="b"), "tb")
    g = dsl.Model(x, dsl.relu(dsl.add(a, b)))
    g.node("b").params = dict(g.node("a").params)
    del g.params["b.weight"], g.params["b.bias"]
    return randomize_bn(g)


@pytest.mark.parametrize("name,module,tail", [
    ("bn_folding", bn_folding, lambda t, n: dsl.batch_norm(t, name=n)),
    ("scale_folding", scale_folding, lambda t, n: dsl.mul(t, dsl.constant(np.arange(1.0, 4.0).reshape(3, 1, 1)))),
])
def test_folding_into_shared_weights(monkeypatch, name, module, tail):
    g = _shared_weights(tail)
    opt, reports = optimize(g, [name])
    assert any("weights 'a.weight' are shared" in r for r in skipped(reports, name))
    same_outputs(g, opt)
    monkeypatch.setattr(module, "owns_params", never)
    wrong, _ = optimize(g, [name])
    assert largest_change(g, wrong) > WRONG  # the second fold scales weights the first already scaled


def test_cse_keeps_nodes_with_different_weights(monkeypatch):
    x = dsl.input("x", (3, 6, 6))
    g = float64_params(dsl.Model(x, dsl.add(dsl.conv2d(x, 4, 3, name="a"), dsl.conv2d(x, 4, 3, name="b"))))
    opt, reports = optimize(g, ["cse"])
    assert ops(opt).count("Conv2d") == 2
    same_outputs(g, opt)
    monkeypatch.setattr(cse, "_same_params", lambda *args: True)
    wrong, _ = optimize(g, ["cse"])
    assert ops(wrong).count("Conv2d") == 1 and largest_change(g, wrong) > WRONG


def test_cse_keeps_nodes_with_different_attributes(monkeypatch):
    x = dsl.input("x", (3, 6, 6))
    g = dsl.Model(x, dsl.add(dsl.leaky_relu(x, 0.1), dsl.leaky_relu(x, 0.3)))
    opt, _ = optimize(g, ["cse"])
    assert ops(opt).count("LeakyReLU") == 2
    same_outputs(g, opt)
    monkeypatch.setattr(cse, "_structure", lambda node: json.dumps([node.op, node.inputs]))
    wrong, _ = optimize(g, ["cse"])
    assert ops(wrong).count("LeakyReLU") == 1 and largest_change(g, wrong) > WRONG


def test_bn_folding_with_the_bn_as_a_graph_output_would_rename_the_output(monkeypatch):
    g = _conv_bn(bn_is_output=True)
    opt, reports = optimize(g, ["bn_folding"])
    assert any("BatchNorm is a graph output" in r for r in skipped(reports, "bn_folding"))
    assert opt.outputs == ["bn"]
    monkeypatch.setattr(bn_folding, "_why_not", never)
    wrong, _ = optimize(g, ["bn_folding"])
    assert wrong.outputs == ["conv"]  # a caller asking for 'bn' would find nothing


def test_scale_folding_skips_a_constant_along_the_width_even_when_width_equals_channels(monkeypatch):
    # Conv output (N, 4, 4, 4): a constant of shape (4,) broadcasts along the width, not the channels,
    # though it has one value per channel's worth.
    x = dsl.input("x", (3, 6, 6))
    y = dsl.conv2d(x, 4, 3, name="conv")
    g = float64_params(dsl.Model(x, dsl.relu(dsl.mul(y, dsl.constant(np.array([0.5, 1.0, 2.0, 4.0]))))))
    opt, reports = optimize(g, ["scale_folding"])
    assert any("does not broadcast per output channel" in r for r in skipped(reports, "scale_folding"))
    same_outputs(g, opt)
    monkeypatch.setattr(scale_folding, "_why_not_channelwise", never)
    wrong, _ = optimize(g, ["scale_folding"])
    assert "Mul" not in ops(wrong) and largest_change(g, wrong) > WRONG


def test_bn_folding_in_a_training_graph_would_freeze_batch_statistics(monkeypatch):
    g = float64_params(_conv_bn(training=True))
    opt, reports = optimize(g, ["bn_folding"])
    assert "BatchNorm2d" in ops(opt)
    monkeypatch.setattr(bn_folding, "_why_not", never)
    wrong, _ = optimize(g, ["bn_folding"])
    assert "BatchNorm2d" not in ops(wrong)
    assert largest_change(g, wrong, train=True) > WRONG  # training BN normalises with the batch's statistics


def test_residual_fusion_adds_one_residual_per_conv():
    # conv + x + x2: the first add fuses; the second must skip, or the fused conv's first skip is replaced.
    x = dsl.input("x", (4, 6, 6))
    x2 = dsl.sigmoid(x)
    g = float64_params(dsl.Model(x, dsl.add(dsl.add(dsl.conv2d(x, 4, 3, padding=1, name="conv"), x), x2)))
    opt, reports = optimize(g, ["residual_fusion"])
    assert ops(opt).count("Add") == 1
    assert any("'conv' already adds a residual" in r for r in skipped(reports, "residual_fusion"))
    same_outputs(g, opt)


def test_folding_leaves_no_orphaned_parameters_when_the_bias_key_is_not_the_node_name():
    # Imported and renamed graphs key parameters by other names: the folded bias replaces the old one.
    g = _conv_bn()
    g.params["imported.conv.b"] = g.params.pop("conv.bias")
    g.node("conv").params["bias"] = "imported.conv.b"
    opt, _ = optimize(g, ["bn_folding"])
    referenced = {key for node in opt.nodes for key in node.params.values()}
    assert set(opt.params) == referenced
    same_outputs(g, opt)


def test_identity_removal_drops_a_flatten_of_an_already_flat_value():
    x = dsl.input("x", (12,))
    g = float64_params(dsl.Model(x, dsl.linear(dsl.flatten(x), 5, name="fc")))
    opt, _ = optimize(g, ["identity_removal"])
    assert ops(opt) == ["Linear"]
    same_outputs(g, opt)

"""cnngraph.compile never changes the graph it is given, whatever the executor does to its params."""

import numpy as np

import cnngraph
from cnngraph import models


def test_compiled_models_own_their_parameters():
    g = models.build("resnet18", input_size=32, num_classes=4)
    before = {k: v.copy() for k, v in g.params.items()}
    for train in (False, True):
        model = cnngraph.compile(g, train=train)
        for arr in model.params.values():
            arr += 1.0  # what an optimiser step (or a BN running-stat update) does: write in place
    for k, v in g.params.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_graph_copy_shares_arrays_but_not_the_dict():
    g = models.build("lenet5")
    c = g.copy()
    assert c.params is not g.params and c.params["c1.weight"] is g.params["c1.weight"]
    c.nodes[0].attrs["stride"] = (2, 2)
    assert g.nodes[0].attrs["stride"] == (1, 1)


def test_outputs_never_alias_inputs_or_parameters():
    from cnngraph.frontends import dsl

    x = dsl.input("x", (2, 3, 3))
    c = dsl.constant(np.ones((1, 2, 3, 3)), name="c")
    g = dsl.Model(x, [dsl.add(x, c, name="y"), c, dsl.identity(x, name="same")])
    model = cnngraph.compile(g, passes="none")
    feed = np.zeros((1, 2, 3, 3), np.float32)
    out = model.run(feed)
    out["c"][...] = 100.0
    out["same"][...] = 7.0
    assert model.run(feed)["y"].max() == 1.0 and feed.max() == 0.0


def test_non_numeric_inputs_are_refused_by_name():
    import pytest

    from cnngraph.errors import CnnGraphError

    model = cnngraph.compile(models.build("lenet5"))
    with pytest.raises(CnnGraphError, match="input 'image': expected real numbers, got an array of dtype <U1"):
        model.run(np.full((1, 1, 32, 32), "a"))
    with pytest.raises(CnnGraphError, match="dtype complex128"):
        model.run(np.zeros((1, 1, 32, 32), complex))

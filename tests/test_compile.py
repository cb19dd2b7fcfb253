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

"""Graph.verify catches the malformed graphs passes and importers can produce; the text form reads well."""

import numpy as np
import pytest

from cnngraph.errors import GraphError
from cnngraph.frontends import dsl
from cnngraph.ir import Graph, Node, TensorType


def small_graph():
    x = dsl.input("x", (3, 8, 8))
    y = dsl.relu(dsl.conv2d(x, 4, 3, padding=1, name="conv"), name="act")
    return dsl.Model(x, y)


def test_text_form_has_one_line_per_node_with_types():
    text = str(small_graph())
    assert "%conv = Conv2d(%x, out_channels=4, k=3, p=1) -> f32[N,4,8,8]" in text
    assert "%act = ReLU(%conv) -> f32[N,4,8,8]" in text


def test_cycle_is_reported_with_its_path():
    g = small_graph()
    g.node("conv").inputs = ["act"]
    with pytest.raises(GraphError, match="cycle: .*conv.*act|cycle: .*act.*conv"):
        g.verify()


def test_dangling_input_is_named():
    g = small_graph()
    g.node("act").inputs = ["nowhere"]
    with pytest.raises(GraphError, match="layer 'act' \\(ReLU\\) reads 'nowhere'"):
        g.verify()


def test_duplicate_names_are_rejected():
    g = small_graph()
    with pytest.raises(GraphError, match="duplicate name 'conv'"):
        g.add_node(Node("conv", "ReLU", ["x"]))


def test_missing_and_misshapen_parameters_are_reported():
    g = small_graph()
    g.params["conv.weight"] = np.zeros((4, 3, 5, 5), np.float32)
    with pytest.raises(GraphError, match="'conv.weight' has shape \\(4, 3, 5, 5\\), expected \\(4, 3, 3, 3\\)"):
        g.verify()
    del g.params["conv.weight"]
    with pytest.raises(GraphError, match="parameter 'conv.weight' is missing"):
        g.verify()


def test_verify_reinfers_shapes_after_an_edit():
    g = small_graph()
    g.inputs["x"] = TensorType(("N", 3, 16, 16))
    g.node("conv").type = None
    g.node("act").type = None
    g.verify()
    assert g.type_of("act").shape == ("N", 4, 16, 16)


def test_users_and_unknown_outputs():
    g = small_graph()
    users = g.users()
    assert [n.name for n in users["conv"]] == ["act"] and users["act"] == []
    g.outputs = ["ghost"]
    with pytest.raises(GraphError, match="graph output 'ghost'"):
        g.verify()


def test_toposort_orders_nodes_and_reports_cycles():
    g = Graph("g")
    g.add_input("x", TensorType(("N", 2)))
    g.add_node(Node("b", "ReLU", ["a"]))
    g.add_node(Node("a", "ReLU", ["x"]))
    g.outputs = ["b"]
    g.toposort().verify()
    assert [n.name for n in g.nodes] == ["a", "b"]
    g.node("a").inputs = ["b"]
    with pytest.raises(GraphError, match="cycle"):
        g.toposort()


def test_inputs_need_a_symbolic_batch_and_positive_sizes():
    g = small_graph()
    g.inputs["x"] = TensorType(("N", 3, -8, 8))
    with pytest.raises(GraphError, match=r"input 'x': shape \('N', 3, -8, 8\) must be"):
        g.verify()

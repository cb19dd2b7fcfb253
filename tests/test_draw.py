"""`cnngraph draw`: the DOT text mirrors the graph (a node per input and layer, an edge per layer input),
names are escaped, joins and fused nodes are marked, and pictures are written."""

import re

import pytest

import cnngraph
from cnngraph import models
from cnngraph.cli import main
from cnngraph.draw import JOIN_COLOUR, draw, to_dot
from cnngraph.frontends import dsl


def dot_nodes_and_edges(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    string = r'"((?:[^"\\]|\\.)*)"'
    nodes = re.findall(rf"^  {string} \[label=", text, re.M)
    edges = re.findall(rf"^  {string} -> {string};$", text, re.M)
    return nodes, edges


@pytest.mark.parametrize("passes", ["none", "default"])
def test_dot_has_a_node_per_layer_and_an_edge_per_input(passes):
    graph = cnngraph.compile(models.build("resnet18", input_size=64), passes=passes).graph
    nodes, edges = dot_nodes_and_edges(to_dot(graph))
    assert nodes == [*graph.inputs, *(n.name for n in graph.nodes)]
    assert edges == [(v, n.name) for n in graph.nodes for v in n.inputs]


def test_joins_and_fused_nodes_are_marked():
    text = to_dot(cnngraph.compile(models.build("resnet18", input_size=64)).graph)
    assert '"layer1.0.conv2" [label="layer1.0.conv2\\nconv 3x3 + bias + residual add + ReLU\\n(N, 64, 16, 16)", ' \
           f'fillcolor="{JOIN_COLOUR}"];' in text
    assert '"fc" [label="fc\\nLinear\\n(N, 1000)", fillcolor="#ffffff", peripheries=2];' in text


def test_names_are_escaped():
    x = dsl.input('a "quoted" \\ name', (3, 8, 8))
    graph = dsl.Model(x, dsl.relu(x, name='b"'), name="odd", seed=0)
    nodes, edges = dot_nodes_and_edges(to_dot(graph))
    assert nodes == ['a \\"quoted\\" \\\\ name', 'b\\"'] and len(edges) == 1


@pytest.mark.parametrize("suffix", ["png", "svg", "dot"])
def test_pictures_are_written(tmp_path, suffix):
    path = tmp_path / f"model.{suffix}"
    draw(models.build("resnet18", input_size=64), path)
    assert path.stat().st_size > 1000


def test_cli(tmp_path, capsys):
    assert main(["draw", "lenet5", "--passes", "default", "-o", str(tmp_path / "m.dot")]) == 0
    assert "8 layers drawn" in capsys.readouterr().out
    assert main(["draw", "lenet5", "-o", str(tmp_path / "m.jpg")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must end in .dot, .svg, .png" in err
    with pytest.raises(SystemExit) as e:
        main(["draw", "lenet5"])
    assert e.value.code == 2

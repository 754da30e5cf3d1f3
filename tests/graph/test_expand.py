"""Expansion and inference, without torch."""
import sys

import pytest

from skipgraph import load_ir
from tests.conftest import SPECS

UNET_GOLDEN = """\
# unet (2D)
input: 1 channels
X[0,0] = conv(input)  # level 0, 1 -> 32
X[1,0] = conv(maxpool(x2, X[0,0]))  # level 1, 32 -> 64
X[2,0] = conv(maxpool(x2, X[1,0]))  # level 2, 64 -> 128
X[2,1] = conv(cat[X[2,0], transpose(x2, X[3,0])])  # level 2, 256 -> 128
X[1,2] = conv(cat[X[1,0], transpose(x2, X[2,1])])  # level 1, 128 -> 64
X[0,3] = conv(cat[X[0,0], transpose(x2, X[1,2])])  # level 0, 64 -> 32
head X[0,3] = sigmoid(conv1x1(X[0,3]))  # 32 -> 1
output = select(X[0,3])"""


def test_golden_unet_depth3_printout():
    text = str(load_ir(SPECS / "unet.yaml", depth=3))
    # X[3,0] sits between X[2,0] and X[2,1] in topological order
    assert text == UNET_GOLDEN.replace(
        "X[2,1] = conv", "X[3,0] = conv(maxpool(x2, X[2,0]))  # level 3, 128 -> 256\nX[2,1] = conv")


def test_unetpp_grid_matches_eq1():
    ir = load_ir(SPECS / "unet_pp.yaml")
    assert ir.graph.number_of_nodes() == 1 + 15
    # X[i,j] = H([X[i,0..j-1], U(X[i+1,j-1])]) in this order
    for node in ir.nodes():
        if node.is_input or node.index[1] == 0:
            continue
        i, j = node.index
        srcs = [e.src for e in ir.in_edges(node.id)]
        assert srcs == [f"X[{i},{k}]" for k in range(j)] + [f"X[{i + 1},{j - 1}]"]
        assert node.in_channels == j * 32 * 2**i + 32 * 2**i
        assert node.out_channels == 32 * 2**i


@pytest.mark.parametrize("spec, nodes, edges, heads", [
    ("unet.yaml", 9, 13, 1),
    ("unet_plus.yaml", 15, 25, 1),
    ("unet_e.yaml", 15, 25, 4),
    ("unet_pp.yaml", 15, 35, 1),
])
def test_zoo_graph_sizes(spec, nodes, edges, heads):
    ir = load_ir(SPECS / spec)
    assert ir.graph.number_of_nodes() - 1 == nodes
    assert ir.graph.number_of_edges() == edges
    assert len(ir.heads) == heads


def test_unet_and_unetpp_differ_in_nodes_and_one_skip_family():
    unet, upp = load_ir(SPECS / "unet.yaml"), load_ir(SPECS / "unet_pp.yaml")
    assert set(unet.graph.nodes) < set(upp.graph.nodes)
    fams_unet, fams_upp = unet.edge_families(), upp.edge_families()
    assert set(fams_unet) ^ set(fams_upp) == {"skip", "dense"}
    assert fams_upp["dense"] == "dense" and fams_unet["skip"] == "skip"


def test_deep_supervision_heads_and_ensemble():
    ir = load_ir(SPECS / "unet_pp.yaml", ds=True)
    assert list(ir.heads) == ["X[0,1]", "X[0,2]", "X[0,3]", "X[0,4]"]
    assert ir.output_mode == "ensemble" and ir.output_heads == tuple(ir.heads)


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 6])
def test_other_depths_expand(depth):
    ir = load_ir(SPECS / "unet_pp.yaml", depth=depth)
    assert ir.max_level == depth
    assert ir.graph.number_of_nodes() - 1 == (depth + 1) * (depth + 2) // 2


def test_expand_json_is_plain_data():
    import json
    data = load_ir(SPECS / "unet.yaml").to_dict()
    again = json.loads(json.dumps(data))
    assert again["nodes"][1]["id"] == "X[0,0]" and again["edges"][0]["family"] == "stem"


def test_graph_stage_does_not_import_torch():
    import subprocess
    code = ("import sys, skipgraph; skipgraph.load_ir('specs/unet_pp.yaml'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=SPECS.parent)
    assert out.stdout.strip() == "False", out.stderr

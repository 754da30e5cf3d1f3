"""Concat order: edge families as written (or `order:`), and inside a family the order its
`for:` counts the sources (smp's UNet++ `[up, X[i,j-1], ..., X[i,0]]` is one family)."""
import pytest

from skipgraph import load_ir
from skipgraph.errors import SpecError

ORDER_SPEC = """\
skipgraph: 1
name: order
params: {depth: 3, in_channels: 1}
nodes:
  X: {for: {i: 0..depth, j: 0..depth-i}, width: 4}
edges:
  stem:    {from: input, to: "X[0,0]"}
  encoder: {from: "X[i-1,0]", to: "X[i,0]"}
  up:      {from: "X[i+1,j-1]", to: "X[i,j]"}
  dense:   {from: "X[i,k]", to: "X[i,j]", for: {k: DENSE}, kind: dense}
heads:
  seg: {on: "X[0,depth]", out: 1}
"""


@pytest.mark.parametrize("dense, order", [
    ("0..j-1", lambda j: list(range(j))),
    ("j-1..0 by -1", lambda j: list(range(j - 1, -1, -1))),
    ("j-1..1 by -1", lambda j: list(range(j - 1, 0, -1))),
])
def test_concat_order_within_a_family_is_its_for_order(write_spec, dense, order):
    """Families in the written order (`up` before `dense`), and inside `dense` the sources in
    the order its `for:` counts them, not the order the nodes were made."""
    ir = load_ir(write_spec(ORDER_SPEC.replace("DENSE", dense)))
    for node in ir.nodes():
        if node.is_input or node.index[1] == 0:
            continue
        i, j = node.index
        srcs = [e.src for e in ir.in_edges(node.id)]
        assert srcs == [f"X[{i + 1},{j - 1}]"] + [f"X[{i},{k}]" for k in order(j)]
        assert [e.slot for e in ir.in_edges(node.id)] == list(range(len(srcs)))


def test_node_family_order_list_still_ranks_families(write_spec):
    text = ORDER_SPEC.replace("DENSE", "j-1..0 by -1").replace(
        "width: 4}", "width: 4, order: [dense, up]}")
    ir = load_ir(write_spec(text))
    assert [e.src for e in ir.in_edges("X[0,3]")] == ["X[0,2]", "X[0,1]", "X[0,0]", "X[1,2]"]


def test_for_order_spans_several_variables(write_spec):
    """Two ranges: the first varies slowest, each counted as written."""
    text = ORDER_SPEC.replace('from: "X[i,k]", to: "X[i,j]", for: {k: DENSE}',
                              'from: "X[m,k]", to: "X[i,j]", for: {m: i..i+1, k: j-1..0 by -1}, '
                              'if: "m == i or (k == 0 and j >= 2)"')
    ir = load_ir(write_spec(text))
    # X[1,2] is `up` already; the dense family adds X[0,2..0], then X[1,0] in its for: order
    assert [e.src for e in ir.in_edges("X[0,3]")] == ["X[1,2]", "X[0,2]", "X[0,1]", "X[0,0]",
                                                       "X[1,0]"]


def test_a_bad_step_is_a_positioned_error(write_spec):
    with pytest.raises(SpecError, match="step 0") as info:
        load_ir(write_spec(ORDER_SPEC.replace("DENSE", "j-1..0 by 0")))
    diag = next(d for d in info.value.diagnostics if "step 0" in d.message)
    assert diag.span is not None and diag.span.line == 10 and diag.key == "edges.dense.for.k"

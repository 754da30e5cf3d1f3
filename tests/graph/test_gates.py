"""Attention gates: the family named by ``gate.by`` must reach the gated edge's node."""
import pytest

import skipgraph
from skipgraph import SpecError

SPEC = """\
skipgraph: 1
name: gated
params: {depth: 2, in_channels: 1}
nodes:
  E: {for: {i: 0..depth}, width: 4, column: 0}
  D: {for: {i: 0..depth-1}, width: 4, column: 1}
edges:
  stem:    {from: input, to: "E[0]"}
  encoder: {from: "E[i-1]", to: "E[i]"}
  skip:    {from: "E[i]", to: "D[i]", GATE}
  bottom:  {from: "E[i+1]", to: "D[i]", if: "i == depth - 1", kind: up}
  up:      {from: "D[i+1]", to: "D[i]"}
heads:
  seg: {on: "D[0]", out: 1}
"""


def test_a_gate_whose_family_misses_the_node_is_an_error(write_spec):
    path = write_spec(SPEC.replace("GATE", "gate: {by: up}"))
    with pytest.raises(SpecError) as err:
        skipgraph.load_ir(path)
    assert "driven by edge family `up`, which has no edge into D[1]" in str(err.value)
    assert err.value.diagnostics[0].span.line == 10  # the `skip:` family


def test_gates_split_by_the_family_that_reaches_each_node(write_spec):
    text = SPEC.replace('skip:    {from: "E[i]", to: "D[i]", GATE}',
                        'skip:    {from: "E[i]", to: "D[i]", if: "i < depth - 1", '
                        'gate: {by: up}}\n  skip_b:  {from: "E[i]", to: "D[i]", '
                        'if: "i == depth - 1", kind: skip, gate: {by: bottom}}')
    ir = skipgraph.load_ir(write_spec(text))
    assert {e.gate_by for e in ir.edges() if e.gate_by} == {"up", "bottom"}

import pytest

from skipgraph import load_ir
from skipgraph.errors import SpecError
from skipgraph.graph import check_input_shape
from tests.conftest import SPECS, TINY_SPEC


def _codes(write_spec, text):
    with pytest.raises(SpecError) as info:
        load_ir(write_spec(text))
    return info.value


def test_no_input_node(write_spec):
    err = _codes(write_spec, TINY_SPEC.replace('  encoder: {from: "X[i-1,0]", to: "X[i,0]"}\n',
                                               ""))
    assert "no-input" in err.codes
    assert any("X[1,0]" in d.message for d in err.diagnostics)


def test_cycle_names_its_nodes_and_families(write_spec):
    err = _codes(write_spec, TINY_SPEC.replace(
        "heads:", '  back: {from: "X[0,1]", to: "X[1,0]"}\nheads:'))
    d = err.diagnostics[0]
    assert d.code == "cycle-outside-loop"
    assert "X[1,0] -> X[0,1] -> X[1,0]" in d.message and "back" in d.message


def test_self_loop_is_a_cycle(write_spec):
    err = _codes(write_spec, TINY_SPEC.replace("for: {k: 0..j-1}", "for: {k: 0..j}"))
    assert err.codes == ["cycle-outside-loop"]


def test_index_variable_may_not_hide_a_param(write_spec):
    err = _codes(write_spec, TINY_SPEC.replace("for: {k: 0..j-1}", "for: {base: 0..j-1}"))
    assert "bad-value" in err.codes


def test_unknown_output_head(write_spec):
    err = _codes(write_spec, TINY_SPEC.replace(
        "output: {mode: \"${'ensemble' if ds else 'select'}\"}",
        "output: {mode: select, head: 'X[0,3]'}"))
    assert err.codes == ["unknown-node"]


@pytest.mark.parametrize("shape, ok", [
    ((1, 1, 64, 64), True), ((2, 1, 48, 80), True), ((1, 1, 60, 64), False),
    ((1, 3, 64, 64), False), ((1, 1, 64), False), ((1, 1, 64, 64, 64), False),
])
def test_input_shape_check(shape, ok):
    ir = load_ir(SPECS / "unet.yaml")
    if ok:
        check_input_shape(ir, shape)
    else:
        with pytest.raises(SpecError) as info:
            check_input_shape(ir, shape)
        assert info.value.codes == ["bad-input-size"]


def test_too_many_nodes_is_refused_quickly(write_spec):
    err = _codes(write_spec, TINY_SPEC.replace("depth: 2", "depth: 200"))
    assert "resource-limit" in err.codes

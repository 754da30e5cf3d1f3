"""Dropout on an edge (`dropout: RATE` or `{rate, spatial, at}` on an edge family) and a conv
unit's `input_dropout` (the residual bypasses it): where the layers sit, that they act in
training only, rates per edge or node, errors at their positions, pruning and eject (MONAI's
VNet, which needs both: tests/integrations/test_peers_monai.py)."""
import importlib.util

import pytest
import torch
import torch.nn as nn

from skipgraph.blocks.unit_params import ConvUnitParams
from skipgraph.blocks.units import ConvUnit
from skipgraph.compile.module import compile_ir
from skipgraph.errors import SpecError
from skipgraph.export import eject_source
from skipgraph.graph import build_ir
from skipgraph.spec import load_spec_text

# a two-level net: pooled encoder edge, transposed up edge, a skip per level
SPEC = """\
skipgraph: 1
name: dropped
params: {p: 0.5, spatial: false, at: target}
input: {channels: 1}
defaults:
  block: {type: conv, convs: 1, norm: batch, act: relu}
  down: {op: maxpool}
nodes:
  E: {for: {i: 0..1}, width: 4}
  D: {for: {i: 0..0}, width: 4}
edges:
  stem: {from: input, to: "E[0]"}
  enc:  {from: "E[i-1]", to: "E[i]", dropout: {rate: 0.25, at: "${at}"}}
  up:   {from: "E[i+1]", to: "D[i]"}
  skip: {from: "E[i]", to: "D[i]", dropout: {rate: p, spatial: "${spatial}"}}
heads:
  seg: {on: "D[0]", out: 1}
"""


def _ir(text=SPEC, **params):
    return build_ir(load_spec_text(text, params, file="spec.yaml"))


def _model(text=SPEC, **params):
    return compile_ir(_ir(text, **params), seed=0)


def _errors(text, **params):
    with pytest.raises(SpecError) as info:
        _ir(text, **params)
    return [(d.code, d.span.line if d.span else None, d.message)
            for d in info.value.diagnostics]


def _line(text, needle):
    return next(k for k, line in enumerate(text.splitlines(), 1) if needle in line)


def test_edge_dropout_layers_and_where_the_code_calls_them():
    model = _model()
    assert isinstance(model.drop_skip_E0_D0, nn.Dropout) and model.drop_skip_E0_D0.p == 0.5
    assert isinstance(model.drop_enc_E0_E1, nn.Dropout) and model.drop_enc_E0_E1.p == 0.25
    code = model.train_code
    # target: after the edge's max-pool; the skip (no resampling) drops the source's value
    assert code.index("max_pool2d") < code.index("self.drop_enc_E0_E1(")
    assert "drop_skip_E0_D0 = self.drop_skip_E0_D0(E0)" in code
    assert str(model.ir).count("drop0.5(E[0])") == 1
    assert "drop0.25(maxpool" in str(model.ir)


def test_at_source_drops_before_the_resampling():
    model = _model(at="source")
    code = model.train_code
    assert code.index("self.drop_enc_E0_E1(") < code.index("max_pool2d")
    assert "maxpool(x2, drop0.25(E[0]))" in str(model.ir)


@pytest.mark.parametrize("dims, layer", [(2, nn.Dropout2d), (3, nn.Dropout3d)])
def test_spatial_dropout_drops_whole_channels(dims, layer):
    text = SPEC.replace("name: dropped", f"name: dropped\ndims: {dims}")
    model = _model(text, spatial=True)
    drop = model.drop_skip_E0_D0
    assert type(drop) is layer
    drop.train()
    torch.manual_seed(0)
    y = drop(torch.ones(4, 8, *[3] * dims))
    per_channel = y.flatten(2)
    assert ((per_channel == 0).all(2) | (per_channel == 2).all(2)).all()  # whole channels
    assert (per_channel == 0).any() and (per_channel == 2).any()


def test_dropout_acts_in_training_only():
    dropped, plain = _model(), _model(SPEC.replace("dropout: {rate: p,", "dropout: {rate: 0,"))
    plain.load_state_dict(dropped.state_dict())  # dropout layers carry no state
    x = torch.randn(2, 1, 8, 8)
    dropped.eval(), plain.eval()
    assert torch.equal(dropped(x), plain(x))
    dropped.train()
    with torch.no_grad():
        torch.manual_seed(0)
        a = dropped(x)
        torch.manual_seed(1)
        assert not torch.equal(a, dropped(x))


def test_rate_zero_builds_no_layer_and_the_rate_alone_is_a_mapping():
    plain = _model(SPEC.replace("dropout: {rate: p, spatial: \"${spatial}\"}", "dropout: 0"))
    assert not hasattr(plain, "drop_skip_E0_D0")
    short = _model(SPEC.replace("dropout: {rate: p, spatial: \"${spatial}\"}", "dropout: 0.3"))
    assert short.drop_skip_E0_D0.p == 0.3 and type(short.drop_skip_E0_D0) is nn.Dropout


def test_a_rate_expression_is_evaluated_per_edge():
    text = SPEC.replace('D: {for: {i: 0..0}, width: 4}', 'D: {for: {i: 0..0}, width: 4}\n'
                        '  B: {level: 1, column: 2, width: 4}')
    text = text.replace('heads:', '  deep: {from: "E[1]", to: B, kind: skip,\n'
                        '          dropout: "0.1 if p > 0.4 else 0"}\n'
                        '  back: {from: B, to: "D[0]"}\nheads:')
    assert _model(text).drop_deep_E1_B.p == 0.1
    assert not hasattr(_model(text, p=0.2), "drop_deep_E1_B")


@pytest.mark.parametrize("old, new", [
    ("dropout: {rate: 0.25,", "dropout: {rate: 1.0,"),
    ("dropout: {rate: 0.25,", "dropout: {rate: -0.1,"),
    ("dropout: {rate: p, spatial", "dropout: {rate: 2, spatial"),
])
def test_a_written_rate_out_of_range_is_an_error_at_its_line(old, new):
    text = SPEC.replace(old, new)
    errors = _errors(text)
    assert any("dropout rate must be from 0" in m and line == _line(text, new)
               for _, line, m in errors), errors


def test_an_evaluated_rate_out_of_range_is_an_error_at_the_rate():
    errors = _errors(SPEC, p=1.5)
    assert any(code == "bad-value" and "`p` gives 1.5" in m and line == _line(SPEC, "rate: p")
               for code, line, m in errors), errors


def test_bad_dropout_settings_are_errors_at_their_line():
    text = SPEC.replace("at: \"${at}\"}", "at: middle}")
    assert any(line == _line(text, "at: middle") for _, line, _ in _errors(text))
    text = SPEC.replace("dropout: {rate: 0.25,", "dropout: {rat: 0.25,")
    assert any(code == "unknown-key" and line == _line(text, "rat: 0.25")
               for code, line, _ in _errors(text))


def test_pruning_keeps_the_edge_dropout():
    model = _model()
    pruned = model.prune("D[0]")
    assert isinstance(pruned.drop_skip_E0_D0, nn.Dropout)
    x = torch.randn(2, 1, 8, 8)
    pruned.train(), model.train()
    with torch.no_grad():
        torch.manual_seed(3)
        a = model(x)
        torch.manual_seed(3)
        assert torch.equal(a, pruned(x))


def _ejected(model, tmp_path):
    path = tmp_path / "ejected_dropout.py"
    path.write_text(eject_source(model))
    spec = importlib.util.spec_from_file_location("ejected_dropout", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ejected = getattr(mod, model.class_name)()
    ejected.load_state_dict(model.state_dict(), strict=True)
    return ejected


def test_the_ejected_file_drops_as_the_compiled_module(tmp_path):
    text = SPEC.replace("E: {for: {i: 0..1}, width: 4}",
                        'E: {for: {i: 0..1}, width: 4, block: {type: convunit, residual: true,'
                        ' input_dropout: "0.5 if i == 1 else 0", input_dropout_spatial: true}}')
    model = _model(text, at="source", spatial=True)
    ejected = _ejected(model, tmp_path)
    x = torch.randn(2, 1, 8, 8)
    for training in (True, False):
        model.train(training), ejected.train(training)
        with torch.no_grad():
            torch.manual_seed(7)
            a = model(x)
            torch.manual_seed(7)
            assert torch.equal(a, ejected(x))


# --- convunit's input_dropout ---------------------------------------------------------------

def test_input_dropout_is_bypassed_by_the_residual():
    unit = ConvUnit(2, 4, 4, ConvUnitParams(convs=2, residual=True, post_act=True, act="elu",
                                            norm="batch", input_dropout=0.5,
                                            input_dropout_spatial=True))
    assert type(unit.input_drop) is nn.Dropout2d and unit.input_drop.p == 0.5
    x = torch.randn(2, 4, 6, 6)
    unit.train()
    with torch.no_grad():
        torch.manual_seed(0)
        got = unit(x)
        torch.manual_seed(0)
        h = unit.input_drop(x)
        for name in unit.layer_names:
            h = getattr(unit, name)(h)
        expected = unit.post_act(h + x)  # the undropped input is added
    assert torch.equal(got, expected)
    unit.eval()
    plain = ConvUnit(2, 4, 4, ConvUnitParams(convs=2, residual=True, post_act=True, act="elu",
                                             norm="batch"))
    plain.load_state_dict(unit.state_dict())
    plain.eval()
    assert plain.input_drop is None and torch.equal(unit(x), plain(x))


def test_input_dropout_per_node_and_in_the_printout():
    text = SPEC.replace("E: {for: {i: 0..1}, width: 4}",
                        'E: {for: {i: 0..1}, width: 4, block: {type: convunit, '
                        'input_dropout: "p if i == 1 else 0"}}')
    ir = _ir(text)
    assert [ir.node(f"E[{i}]").block.input_dropout for i in (0, 1)] == [0.0, 0.5]
    assert "E[1] = convunit[drop](" in str(ir) and "E[0] = convunit(" in str(ir)
    model = compile_ir(ir)
    assert model.E0.input_drop is None and type(model.E1.input_drop) is nn.Dropout


def test_a_bad_input_dropout_is_an_error_at_its_line():
    text = SPEC.replace("E: {for: {i: 0..1}, width: 4}",
                        "E: {for: {i: 0..1}, width: 4,\n"
                        "      block: {type: convunit, input_dropout: 1.2}}")
    assert any("dropout rate must be from 0" in m and line == _line(text, "input_dropout")
               for _, line, m in _errors(text))
    text = text.replace("input_dropout: 1.2", "input_dropout: \"p * 3\"")
    assert any("`p * 3` gives 1.5" in m and line == _line(text, "input_dropout")
               for _, line, m in _errors(text))

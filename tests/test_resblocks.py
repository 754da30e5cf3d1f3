"""Residual units with the activation after the sum (`resblock`), the conv-free `identity`
block, blocks that stride (their node sits at the level of its output) and per-conv `widths`:
structure, counts, equality with a hand-written ResNet BasicBlock, and positioned errors."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import skipgraph
from skipgraph.blocks.builtin import ConvParams, ResBlockParams
from skipgraph.blocks.conv import ConvStack
from skipgraph.blocks.resnet import ResBlock
from skipgraph.compile.module import compile_ir
from skipgraph.errors import SpecError
from skipgraph.graph import build_ir
from skipgraph.graph.contract import total_stride
from skipgraph.spec import load_spec_text
from tests.conftest import SPECS

# a stem that strides (level 1, a skip source at stride 2), a max-pool into E[2], strided
# residual stages E[3..4], and a decoder whose middle width is half
SPEC = """\
skipgraph: 1
name: strided
params: {in_channels: 3, classes: 1, stage_units: 2, post: true}
input: {channels: in_channels}
defaults:
  block: {type: conv, convs: 2, bias: false, norm: batch, act: relu}
nodes:
  S: {level: 1, width: 8, block: {convs: 1, kernel: 7, stride: 2}}
  E: {for: {i: 2..4}, width: "8 * 2**(i - 2)", column: 0,
      block: {type: resblock, stride: "1 if i == 2 else 2", units: "stage_units",
              post_act: "${post}"}}
  D: {for: {i: 0..3}, width: 4, column: 5 - i, block: {widths: ["width // 2"]}}
edges:
  stem:   {from: input, to: S}
  pool:   {from: S, to: "E[2]", kind: encoder}
  enc:    {from: "E[i-1]", to: "E[i]"}
  bottom: {from: "E[4]", to: "D[3]", kind: up}
  up:     {from: "D[i+1]", to: "D[i]"}
  skip:   {from: "E[i]", to: "D[i]"}
  skip_s: {from: S, to: "D[1]"}
heads:
  seg: {on: "D[0]", out: classes}
"""


def _ir(text=SPEC, **params):
    return build_ir(load_spec_text(text, params, file="spec.yaml"))


def _errors(text, **params):
    with pytest.raises(SpecError) as info:
        _ir(text, **params)
    return [(d.code, d.span.line if d.span else None, d.message)
            for d in info.value.diagnostics]


def _line(text, needle):
    return next(k for k, line in enumerate(text.splitlines(), 1) if needle in line)


def test_strided_nodes_sit_at_their_output_level_and_edges_do_not_resample_into_them():
    ir = _ir()
    assert ir.node("S").level == 1 and ir.node("S").in_level == 0
    assert ir.node("E[3]").level == 3 and ir.node("E[3]").in_level == 2
    assert ir.edge("input", "S").resample is None          # the stem's conv strides
    assert ir.edge("S", "E[2]").resample.factor == 2       # the max-pool
    assert ir.edge("E[2]", "E[3]").resample is None        # the stage's first unit strides
    assert ir.edge("E[2]", "E[3]").kind == "encoder"       # drawn as going down a level
    assert total_stride(ir) == 16
    assert "E[3] = resblock[x2 /2](E[2])" in str(ir) and "S = conv[/2](input)" in str(ir)


def test_strided_network_runs_and_checks_its_input_stride():
    model = compile_ir(_ir())
    out = model(torch.randn(2, 3, 32, 48))
    assert out.shape == (2, 1, 32, 48)
    assert model.S.conv1.stride == (2, 2) and model.S.conv1.kernel_size == (7, 7)
    with pytest.raises(ValueError, match="multiple of the total stride 16"):
        model(torch.randn(1, 3, 24, 32))


def test_middle_width_is_half_the_output():
    model = compile_ir(_ir())
    assert model.D0.conv1.out_channels == 2 and model.D0.conv2.in_channels == 2
    assert model.D0.conv2.out_channels == 4 and model.D0.norm1.num_features == 2


def _basic_block_count(cin, cout, stride):
    body = 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout
    return body + ((cin * cout + 2 * cout) if stride != 1 or cin != cout else 0)


def test_counts_term_by_term():
    model = compile_ir(_ir())
    assert sum(p.numel() for p in model.E3.parameters()) == \
        _basic_block_count(8, 16, 2) + _basic_block_count(16, 16, 1)
    assert sum(p.numel() for p in model.E2.parameters()) == 2 * _basic_block_count(8, 8, 1)
    # D[0] gets only the 4-channel up path: 3x3 conv to half, BN, 3x3 conv to the width, BN
    assert sum(p.numel() for p in model.D0.parameters()) == 9 * 4 * 2 + 4 + 9 * 2 * 4 + 8


class _TorchvisionBasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, written out (He et al. 2016)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                  nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.down is None else self.down(x)))


@pytest.mark.parametrize("cin, cout, stride", [(8, 16, 2), (8, 8, 1), (8, 16, 1)])
def test_one_unit_equals_resnets_basic_block(cin, cout, stride):
    torch.manual_seed(0)
    ours = ResBlock(2, cin, cout, ResBlockParams(stride=stride)).eval()
    ref = _TorchvisionBasicBlock(cin, cout, stride).eval()
    names = {"conv1": "conv1", "bn1": "norm1", "conv2": "conv2", "bn2": "norm2",
             "down.0": "shortcut.conv", "down.1": "shortcut.norm"}
    state = {}
    for key, value in ref.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        state[f"unit1.{names[prefix]}.{leaf}"] = value
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, cin, 16, 16)
    assert torch.equal(ours(x), ref(x))


def test_post_act_false_puts_the_activation_before_the_sum():
    unit = ResBlock(2, 4, 4, ResBlockParams(post_act=False, norm="none"))[0]
    assert hasattr(unit, "act2") and unit.act is None
    x = -torch.ones(1, 4, 8, 8)  # the shortcut passes negative values through unchanged
    assert (unit(x) < 0).any()
    post = ResBlock(2, 4, 4, ResBlockParams(norm="none"))[0]
    assert not hasattr(post, "act2") and (post(x) >= 0).all()


def test_pool_conv_shortcut_is_resnet_d():
    unit = ResBlock(2, 8, 16, ResBlockParams(stride=2, shortcut="pool_conv", bias=True,
                                            norm={"type": "instance", "affine": True}))[0]
    assert isinstance(unit.shortcut.pool, nn.AvgPool2d) and unit.shortcut.conv.stride == (1, 1)
    assert unit.shortcut.conv.bias is None          # a norm follows: no bias
    same_width = ResBlock(2, 16, 16, ResBlockParams(stride=2, shortcut="pool_conv"))[0]
    assert list(dict(same_width.shortcut.named_children())) == ["pool"]
    no_norm = ResBlock(2, 8, 16, ResBlockParams(norm="none"))[0]
    assert no_norm.shortcut.conv.bias is not None   # no norm: the 1x1 conv keeps its bias


def test_conv_stack_stride_and_widths_in_3d():
    stack = ConvStack(3, 2, 8, ConvParams(convs=3, stride=2, widths=[4, 6]))
    assert [m.out_channels for m in stack if isinstance(m, nn.Conv3d)] == [4, 6, 8]
    assert stack(torch.randn(1, 2, 8, 8, 8)).shape == (1, 8, 4, 4, 4)


def test_identity_block_is_a_norm_act_node_and_keeps_channels():
    text = SPEC.replace("  D: {for: {i: 0..3}, width: 4,",
                        "  A: {level: 4, column: 1, width: 32, block: {type: identity, "
                        "norm: none, act: relu}}\n  D: {for: {i: 0..3}, width: 4,")
    text = text.replace('bottom: {from: "E[4]", to: "D[3]"',
                        'act: {from: "E[4]", to: A}\n  bottom: {from: A, to: "D[3]"')
    model = compile_ir(_ir(text))
    assert [type(m) for m in model.A] == [nn.ReLU] and not list(model.A.parameters())
    assert "A = identity(E[4])" in str(model.ir)
    # a family of another block type inherits the defaults' settings that type has (norm)
    inherited = compile_ir(_ir(text.replace("norm: none, act: relu", "act: relu")))
    assert [type(m) for m in inherited.A] == [nn.BatchNorm2d, nn.ReLU]
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    bad = text.replace("width: 32, block: {type: identity", "width: 16, block: {type: identity")
    (code, line, msg), = [e for e in _errors(bad) if e[0] == "channel-mismatch"]
    assert line == _line(bad, "  A: {") and "keeps its 32 input channels" in msg


# --- positioned errors --------------------------------------------------------------------

@pytest.mark.parametrize("old, new, needle, message", [
    ("widths: [\"width // 2\"]", "widths: [2, 2]", "  D: {", "lists 2 width(s) for 2 conv"),
    ("widths: [\"width // 2\"]", "widths: [0]", "  D: {", "`widths` must be from 1"),
    ("widths: [\"width // 2\"]", "widths: [\"width // 8\"]", "  D: {", "expected an integer >= 1"),
    ("widths: [\"width // 2\"]", "widths: [\"wdth\"]", "  D: {", "wdth"),
    ("kernel: 7, stride: 2", "kernel: 7, stride: 3", "  S: {", "power of 2"),
    ("kernel: 7, stride: 2", "kernel: 7, stride: 4", "  S: {", "inputs would arrive at level -1"),
    ("units: \"stage_units\"", "units: \"stage_units - 2\"", "type: resblock",
     "expected an integer >= 1"),
    ("units: \"stage_units\"", "units: 65", "type: resblock", "`units` must be from 1 to 64"),
    ("post_act: \"${post}\"", "post_act: \"${post}\", shortcut: pool", "shortcut: pool",
     "'conv' or 'pool_conv'"),
])
def test_bad_settings_are_positioned(old, new, needle, message):
    text = SPEC.replace(old, new)
    assert text != SPEC
    errors = _errors(text)
    assert any(message in msg and line == _line(text, needle) for _, line, msg in errors), errors


def test_a_block_on_an_edge_may_not_stride():
    text = SPEC.replace('skip_s: {from: S, to: "D[1]"}',
                        'skip_s: {from: S, to: "D[1]", conv: {width: 4, block: {stride: 2}}}')
    errors = _errors(text)
    assert any("drop its `stride`" in msg and line == _line(text, "skip_s:")
               for _, line, msg in errors), errors


def test_evaluated_stride_is_checked_per_node():
    text = SPEC.replace('stride: "1 if i == 2 else 2"', 'stride: "1 if i == 2 else 3"')
    errors = _errors(text)
    assert any("power of 2" in msg and line == _line(text, 'stride: "1 if') for _, line, msg in errors)


def test_check_cli_reports_the_position(tmp_path):
    from skipgraph.cli import main
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace("kernel: 7, stride: 2", "kernel: 7, stride: 6"))
    assert main(["check", str(path)]) == 2


def test_build_uses_the_expression_settings_per_node():
    model = skipgraph.build(SPECS / "resnet_unet.yaml", encoder="resnet18")
    assert [len(getattr(model, f"E{i}")) for i in range(2, 6)] == [2, 2, 2, 2]
    model = skipgraph.build(SPECS / "resnet_unet.yaml")
    assert [len(getattr(model, f"E{i}")) for i in range(2, 6)] == [3, 4, 6, 3]



def test_blocks_per_stage_list_must_cover_the_stages():
    """nnunet_resenc's `units: "blocks[i]"`: a list param shorter than `stages` is an error at
    the setting, not an index error."""
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(SPECS / "nnunet_resenc.yaml", stages=7)
    found = [d for d in info.value.diagnostics if "outside the list" in d.message]
    assert found and found[0].span is not None
    assert found[0].span.line == _line((SPECS / "nnunet_resenc.yaml").read_text(), "blocks[i]")


def _grads(module, x):
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    module(x).square().sum().backward()
    return [x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("act, post_act, norm", [
    ("relu", True, "batch"), ({"type": "leaky_relu", "negative_slope": 0.01}, True, "instance"),
    ("elu", True, "none"), ("relu", False, "batch"), ("gelu", True, "group")])
def test_units_sum_and_activate_in_place_with_the_out_of_place_results(act, post_act, norm):
    """The shortcut goes into the last conv's / norm's output and ReLU / LeakyReLU / ELU run in
    place (as torchvision's BasicBlock, nnU-Net's BasicBlockD, MONAI's UnetResBlock): outputs
    and gradients equal those of the same unit with every op out of place."""
    torch.manual_seed(0)
    params = ResBlockParams(stride=1, act=act, post_act=post_act, norm=norm)
    ours = ResBlock(2, 8, 8, params).train()
    plain = ResBlock(2, 8, 8, params).train()
    plain.load_state_dict(ours.state_dict())
    unit = plain[0]
    unit.add_in_place = False
    for m in plain.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    assert ours[0].add_in_place is post_act  # the last layer is a norm or conv only with post_act
    x = torch.randn(2, 8, 8, 8)
    assert torch.equal(ours(x), plain(x))
    tol = 1e-5 if act == "elu" else 0.0  # ELU's backward from its output: rounding level
    for a, b in zip(_grads(ours, x), _grads(plain, x)):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_in_place_act_only_where_the_backward_reads_the_output():
    from skipgraph.blocks.layers import in_place_act, output_free_backward
    for act in (nn.ReLU(), nn.LeakyReLU(0.01), nn.ELU()):
        assert in_place_act(act).inplace
    for act in (nn.LeakyReLU(-0.1), nn.ELU(alpha=-1.0)):
        assert not in_place_act(act).inplace
    assert isinstance(in_place_act(nn.PReLU()), nn.PReLU) and in_place_act(None) is None
    assert output_free_backward(nn.Conv2d(1, 1, 1)) and output_free_backward(nn.GroupNorm(1, 2))
    assert not output_free_backward(nn.ReLU())


def test_in_place_sum_keeps_the_wider_dtype_under_autocast():
    unit = ResBlock(2, 4, 8, ResBlockParams(norm="none"))[0]  # conv last, 1x1 conv shortcut
    assert unit.add_in_place
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert unit(torch.randn(1, 4, 8, 8)).dtype == torch.bfloat16
    x = torch.randn(1, 4, 8, 8)
    unit.shortcut = None  # an fp32 identity shortcut into a bf16 conv output: out of place
    unit.conv1 = nn.Conv2d(4, 8, 3, padding=1)
    unit.conv2 = nn.Conv2d(8, 4, 3, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert unit(x).dtype == torch.float32

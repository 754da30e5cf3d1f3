"""The vision-transformer blocks (`patch_embed`, `transformer`, `token_norm`): a layer equals a
hand-written pre-norm ViT layer on torch's MultiheadAttention, the position embedding, dropout,
fx tracing of a compiled ViT encoder-decoder, positioned errors, and `check` without torch."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from skipgraph.blocks.transformer import PatchEmbedding, TokenNorm, TransformerLayer
from skipgraph.blocks.transformer_params import PatchEmbedParams, TokenNormParams, TransformerParams
from skipgraph.compile import compile_ir
from skipgraph.errors import SpecError
from skipgraph.graph import build_ir
from skipgraph.spec import load_spec_text
from tests.conftest import ROOT

# a 4-layer ViT on 4x4 patches (level 2), its 2nd layer and its normed last layer tapped into a
# two-level decoder
SPEC = """\
skipgraph: 1
name: tiny-vit-unet
params: {in_channels: 1, width: 16, heads: 4, grid: 4, drop: 0.0}
dims: 2
defaults:
  block: {type: conv, convs: 1, norm: none, act: relu}
  up: {op: transpose, kernel: 2}
nodes:
  E: {level: 0, width: 4}
  P: {level: 2, column: 0, width: width, block: {type: patch_embed, stride: 4, grid: "${grid}",
                                                  dropout: "${drop}"}}
  T: {for: {k: 1..4}, level: 2, column: k, width: width,
      block: {type: transformer, heads: "${heads}", mlp: 32, act: gelu, dropout: "${drop}"}}
  Z: {level: 2, column: 5, width: width, block: {type: token_norm}}
  D: {for: {i: 0..1}, level: i, column: 6, width: 8}
edges:
  stem:   {from: input, to: E}
  embed:  {from: input, to: P}
  first:  {from: P, to: "T[1]", kind: encoder}
  layers: {from: "T[k-1]", to: "T[k]", kind: encoder}
  norm:   {from: "T[4]", to: Z, kind: encoder}
  bottom: {from: Z, to: "D[1]"}
  tap:    {from: "T[2]", to: "D[1]"}
  up:     {from: "D[i+1]", to: "D[i]"}
  skip:   {from: E, to: "D[0]"}
heads:
  seg: {on: "D[0]", out: 1}
"""


def _build(text=SPEC, **params):
    return compile_ir(build_ir(load_spec_text(text, params, file="vit.yaml")), seed=0)


def _errors(text: str) -> list:
    with pytest.raises(SpecError) as exc:
        build_ir(load_spec_text(text, file="vit.yaml"))
    return exc.value.diagnostics


def test_a_layer_equals_a_pre_norm_vit_layer_on_torch_multihead_attention():
    torch.manual_seed(0)
    layer = TransformerLayer(2, 16, 16, TransformerParams(heads=4, mlp=32, qkv_bias=True,
                                                          act="gelu")).eval()
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(layer.attn.qkv.weight)
        mha.in_proj_bias.copy_(layer.attn.qkv.bias)
        mha.out_proj.weight.copy_(layer.attn.out_proj.weight)
        mha.out_proj.bias.copy_(layer.attn.out_proj.bias)
    x = torch.randn(2, 16, 3, 5)  # a 3 x 5 grid of 16-feature tokens
    t = x.flatten(2).transpose(1, 2)
    h = layer.norm1(t)
    t = t + mha(h, h, h, need_weights=False)[0]
    t = t + layer.mlp.linear2(F.gelu(layer.mlp.linear1(layer.norm2(t))))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), t.transpose(1, 2).reshape(2, 16, 3, 5))


def test_the_position_table_is_added_at_its_grid_and_interpolated_elsewhere():
    torch.manual_seed(0)
    embed = PatchEmbedding(2, 1, 8, PatchEmbedParams(stride=4, grid=[2, 3])).eval()
    assert embed.position.shape == (1, 6, 8)  # MONAI's layout: (1, tokens, features)
    x = torch.randn(1, 1, 8, 12)
    table = embed.position[0].T.reshape(1, 8, 2, 3)
    torch.testing.assert_close(embed(x), embed.proj(x) + table, rtol=0, atol=0)
    assert embed(torch.randn(1, 1, 16, 16)).shape == (1, 8, 4, 4)
    # at the declared grid the table is used as it is (no resize op), and equals the resize
    tokens = embed.proj(x)
    with torch.profiler.profile() as prof:
        at_grid = embed.positions(tokens)
    assert not [e for e in prof.events() if "upsample" in e.name]
    assert torch.equal(at_grid, F.interpolate(table, size=(2, 3), mode="bicubic"))
    without = PatchEmbedding(2, 1, 8, PatchEmbedParams(stride=4))
    assert [n for n, _ in without.named_parameters()] == ["proj.weight", "proj.bias"]


@pytest.mark.parametrize("dims, eps", [(2, 1e-6), (3, 1e-5)])
def test_token_norm_normalises_a_conv_map_over_its_channels(dims, eps):
    # a LayerNorm2d / 3d over the channels at each position (ConvNeXt's, smp UPerNet's)
    torch.manual_seed(0)
    norm = TokenNorm(dims, 6, 6, TokenNormParams(eps=eps))
    assert norm.norm.eps == eps
    with torch.no_grad():
        norm.norm.weight.normal_(), norm.norm.bias.normal_()
    x = 3 * torch.randn(2, 6, *[5] * dims) + 1
    last = x.movedim(1, -1)
    expected = F.layer_norm(last, (6,), norm.norm.weight, norm.norm.bias, eps).movedim(-1, 1)
    with torch.no_grad():
        torch.testing.assert_close(norm(x), expected, rtol=0, atol=1e-6)
    assert TokenNormParams().eps == 1e-5  # torch's default, as before the setting


def test_patches_put_the_node_log2_patch_levels_below_its_input():
    ir = build_ir(load_spec_text(SPEC, file="vit.yaml"))
    assert ir.node("P").level == 2 and ir.node("P").in_level == 0
    model = _build()
    assert model.contract.stride == 4
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 1, 16, 16)


def test_dropout_acts_in_training_only():
    model = _build(drop=0.5)
    x = torch.randn(2, 1, 16, 16)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("training", [True, False])
def test_the_compiled_module_traces_with_torch_fx(training):
    model = _build()
    gm = model.graph_module(training=training)
    traced = torch.fx.symbolic_trace(gm)  # attention and positions: no data-dependent branches
    assert any(n.target is F.scaled_dot_product_attention for n in traced.graph.nodes)
    x = torch.randn(2, 1, 16, 16)
    torch.manual_seed(0)
    ref = gm(x)
    torch.manual_seed(0)
    torch.testing.assert_close(traced(x), ref)


def test_torch_compile_has_no_graph_break():
    import torch._dynamo
    model = _build().eval()
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(torch.randn(1, 1, 16, 16))
    assert explanation.graph_break_count == 0


@pytest.mark.parametrize("change, code, where, words", [
    ("heads: \"${heads}\"", "heads: 3", "nodes.T", "do not divide the 16 channels"),
    ("  T: {for: {k: 1..4}, level: 2, column: k, width: width,",
     "  T: {for: {k: 1..4}, level: 2, column: k, width: 8,", "nodes.T", "keeps its 16 input"),
    ("stride: 4, grid", "stride: 3, grid", "nodes.P.block.stride", "power of 2"),
    ("grid: \"${grid}\"", "grid: [4, 4, 4]", "nodes.P", "3 sizes for 2 spatial axes"),
    ("grid: \"${grid}\"", "grid: 0", "nodes.P.block.grid", "from 1 to"),
    ("mlp: 32", "mlp: 0", "nodes.T.block.mlp", "greater than or equal to 1"),
    ("{type: token_norm}", "{type: token_norm, epsilon: 1}", "nodes.Z.block.epsilon",
     "unknown key"),
    ("{type: token_norm}", "{type: token_norm, eps: 0}", "nodes.Z.block.eps", "greater than 0"),
    ("act: gelu", "act: {type: prelu, num_parameters: 16}", "nodes.T", "num_parameters: 1"),
])
def test_bad_settings_are_errors_at_their_position(change, code, where, words):
    assert change in SPEC
    diags = _errors(SPEC.replace(change, code, 1))
    assert any(words in d.message and d.span is not None and d.span.line > 1
               and (d.key or "").startswith(where) for d in diags), [
        (d.key, d.message) for d in diags]


def test_check_reads_a_transformer_spec_without_torch():
    code = ("import sys; from skipgraph.cli import main; rc = main(['check', 'monai_unetr']); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "0 False", out.stderr

"""MA-Net's attention pieces: `position_attention` (self-attention over all positions, the
PAB) and `image_pool` with `reduction` (a squeeze-and-excitation channel gate), gated into a
feature by `merge: product` (the MFAB): behaviour against hand-written torch in 2D and 3D,
counts, and errors at their positions (the zoo spec: specs/smp_manet.yaml, tested against smp
in tests/integrations/test_peers_smp.py)."""
import pytest
import torch
import torch.nn.functional as F

import skipgraph
from skipgraph.blocks.context import ImagePool
from skipgraph.blocks.context_params import ImagePoolParams
from skipgraph.blocks.position import PositionAttention
from skipgraph.blocks.position_params import PositionAttentionParams
from skipgraph.compile.summary import count_params
from skipgraph.errors import SpecError


def _conv(x, conv):
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding) if x.dim() == 4 else \
        F.conv3d(x, conv.weight, conv.bias, padding=conv.padding)


def _by_hand(block, x, softmax, transpose):
    """The PAB written out: scores[i, j] = query_i . key_j over the P positions."""
    n, c = x.shape[:2]
    q = _conv(x, block.query).flatten(2)  # (N, K, P)
    k = _conv(x, block.key).flatten(2)
    v = _conv(x, block.value).flatten(2)  # (N, C, P)
    scores = torch.einsum("nki,nkj->nij", q, k)
    if softmax == "map":  # one softmax over the whole P x P map of a sample
        weights = torch.exp(scores - scores.amax(dim=(1, 2), keepdim=True))
        weights = weights / weights.sum(dim=(1, 2), keepdim=True)
    else:
        weights = scores.softmax(dim=2)
    attended = torch.einsum("nij,ncj->nic", weights, v)  # (N, P, C)
    attended = attended.transpose(1, 2) if transpose else attended
    return _conv(x + attended.reshape(x.shape), block.out)


@pytest.mark.parametrize("softmax, transpose", [("map", False), ("keys", True),
                                                ("map", True), ("keys", False)])
@pytest.mark.parametrize("spatial", [(3, 5), (2, 3, 4)], ids=["2d", "3d"])
def test_position_attention_is_the_written_out_formula(softmax, transpose, spatial):
    params = PositionAttentionParams(key_channels=4, softmax=softmax, transpose=transpose)
    block = PositionAttention(len(spatial), 6, 7, params)
    x = torch.randn(2, 6, *spatial)
    with torch.no_grad():
        y = block(x)
        assert y.shape == (2, 7, *spatial)
        assert torch.allclose(y, _by_hand(block, x, softmax, transpose), atol=1e-5)


def test_with_equal_keys_the_map_softmax_weighs_queries_and_the_key_softmax_averages():
    """smp's PAB normalises the whole P x P map: with every key equal, each query's row is
    flat, so per-query softmax gives every position the values' mean, while the map softmax
    gives query i the values' sum times exp(s_i) / (P sum_l exp(s_l))."""
    x = torch.randn(2, 4, 2, 3)
    for softmax in ("map", "keys"):
        block = PositionAttention(2, 4, 4, PositionAttentionParams(key_channels=2,
                                                                   softmax=softmax))
        with torch.no_grad():
            block.key.weight.zero_(), block.key.bias.fill_(0.5)
            block.out.weight.zero_(), block.out.bias.zero_()
            block.out.weight[:, :, 1, 1] = torch.eye(4)  # out = identity
            v = block.value(x).flatten(2)  # (N, C, P)
            if softmax == "keys":
                attended = v.mean(dim=2, keepdim=True).expand(-1, -1, 6).transpose(1, 2)
            else:
                s = block.query(x).flatten(2).sum(dim=1) * 0.5  # (N, P): query . key
                w = s.softmax(dim=1) / 6
                attended = w[:, :, None] * v.sum(dim=2)[:, None, :]  # (N, P, C)
            assert torch.allclose(block(x), x + attended.reshape(x.shape), atol=1e-5)


def test_position_attention_counts_and_children():
    block = PositionAttention(3, 8, 16, PositionAttentionParams(key_channels=4, kernel=3))
    assert [n for n, _ in block.named_children()] == ["query", "key", "value", "out"]
    expected = 2 * (8 * 4 + 4) + (27 * 8 * 8 + 8) + (27 * 8 * 16 + 16)
    assert count_params(block) == expected
    assert PositionAttentionParams(key_channels=4).estimate_params(3, 8, 16) == expected
    assert PositionAttentionParams(key_channels=4).note() == "4 keys"


@pytest.mark.parametrize("channels, reduction, hidden", [(32, 16, 2), (8, 16, 1), (5, 2, 2)])
def test_image_pool_with_reduction_is_a_squeeze_and_excitation_gate(channels, reduction,
                                                                     hidden):
    params = ImagePoolParams(reduction=reduction, act="sigmoid")
    block = ImagePool(2, channels, channels, params)
    assert block.reduce.out_channels == hidden == params.hidden_channels(channels)
    assert params.estimate_params(2, channels, channels) == count_params(block)
    x = torch.randn(2, channels, 5, 6)
    with torch.no_grad():
        s = x.mean(dim=(2, 3))
        e = torch.sigmoid(F.linear(F.relu(F.linear(s, block.reduce.weight[:, :, 0, 0],
                                                   block.reduce.bias)),
                                   block.conv.weight[:, :, 0, 0], block.conv.bias))
        y = block(x)
    assert y.shape == x.shape and torch.allclose(y, e[:, :, None, None].expand_as(y), atol=1e-6)
    assert ImagePoolParams(reduction=16).note() == "global avg /16"
    assert not hasattr(ImagePool(2, 8, 8, ImagePoolParams()), "reduce")


# MFAB's fusion: M = U * (SE(U) + SE(K)) concatenated with the skip K, in 2D or 3D
MFAB_SPEC = """\
skipgraph: 1
name: mfab
params: {in_channels: 2, classes: 1}
input: {channels: in_channels}
defaults:
  block: {type: conv, convs: 1, bias: false, norm: batch, act: relu}
  down: {op: maxpool}
  up: {op: nearest}
nodes:
  K: {level: 0, column: 0, width: 8}
  E: {level: 1, column: 0, width: 8}
  A: {level: 1, column: 1, width: 8, block: {type: position_attention, key_channels: 2}}
  U: {level: 0, column: 2, width: 8, block: {type: identity, norm: none, act: none}}
  GU: {level: 0, column: 3, row: 1, width: 8, block: &se {type: image_pool, reduction: 4,
                                                          norm: none, act: sigmoid}}
  GS: {level: 0, column: 3, row: -1, width: 8, block: *se}
  G: {level: 0, column: 4, width: 8, merge: sum, block: {type: identity, norm: none, act: none}}
  M: {level: 0, column: 5, width: 8, merge: product,
      block: {type: identity, norm: none, act: none}}
  D: {level: 0, column: 6, width: 4}
edges:
  stem:  {from: input, to: K}
  down:  {from: K, to: E}
  attn:  {from: E, to: A}
  up:    {from: A, to: U}
  se_u:  {from: U, to: GU}
  se_k:  {from: K, to: GS, kind: skip}
  sum_u: {from: GU, to: G}
  sum_k: {from: GS, to: G}
  feat:  {from: U, to: M}
  gate:  {from: G, to: M}
  fused: {from: M, to: D}
  skip:  {from: K, to: D}
heads:
  seg: {on: D, out: classes}
"""


@pytest.mark.parametrize("dims", [2, 3])
def test_a_spec_gates_a_feature_by_two_summed_se_gates(write_spec, dims):
    model = skipgraph.build(write_spec(MFAB_SPEC), seed=0, dims=dims).eval()
    x = torch.randn(2, 2, *[8] * dims)
    with torch.no_grad():
        k = model.K(x)
        u = F.interpolate(model.A(model.E(F.max_pool2d(k, 2) if dims == 2
                                          else F.max_pool3d(k, 2))), scale_factor=2)
        m = u * (model.GU(u) + model.GS(k))
        expected = model.head_D(model.D(torch.cat([m, k], dim=1)))
        assert torch.allclose(model(x), expected, atol=1e-5)
    model.train()
    model(x).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("old, new, needle, message", [
    ("key_channels: 2}", "key_channels: 0}", "key_channels: 0", "greater than or equal to 1"),
    ("key_channels: 2}", "key_channels: 2, kernel: 2}", "kernel: 2", "odd kernel"),
    ("key_channels: 2}", "key_channels: 2, softmax: rows}", "softmax: rows", "'map' or 'keys'"),
    ("reduction: 4,", "reduction: 0,", "reduction: 0", "greater than or equal to 1"),
    ("reduction: 4,", "reduction: 4, hidden_act: {type: prelu, num_parameters: 8},",
     "hidden_act", "hidden_act (in the 2-channel SE bottleneck): a PReLU"),
])
def test_bad_attention_settings_are_errors_at_their_position(write_spec, old, new, needle,
                                                             message):
    text = MFAB_SPEC.replace(old, new)
    with pytest.raises(SpecError) as info:
        skipgraph.build(write_spec(text))
    line = next(k for k, row in enumerate(text.splitlines(), 1) if needle in row)
    found = [(d.span.line if d.span else None, d.message) for d in info.value.diagnostics]
    assert any(message in m and at == line for at, m in found), found


def test_the_memory_guards_count_the_attention_map(write_spec):
    """The PAB holds 2 x positions^2 floats per sample (scores, softmax): at 65,536 positions
    (level 1 of a 512 x 512 input) 34 GB, refused before anything is allocated."""
    from skipgraph.graph.estimate import (Budget, check_budget, estimate_activation_bytes,
                                          estimate_training_bytes)
    ir = skipgraph.load_ir(write_spec(MFAB_SPEC))
    small = (1, 2, 8, 8)  # A at level 1: 16 positions
    plain = skipgraph.load_ir(write_spec(MFAB_SPEC.replace(
        "{type: position_attention, key_channels: 2}", "{convs: 1}"), "plain.yaml"))
    extra = 4 * (2 * 16 * 16 + 16 * 8)
    assert estimate_activation_bytes(ir, small) - estimate_activation_bytes(plain, small) == extra
    assert estimate_training_bytes(ir, small) - estimate_training_bytes(plain, small) > extra
    big = (1, 2, 512, 512)  # 65536 positions at level 1
    assert estimate_activation_bytes(ir, big) > 2 * 65536**2 * 4
    with pytest.raises(SpecError, match="activations"):
        check_budget(ir, Budget(activation_bytes=16e9), input_shape=big)

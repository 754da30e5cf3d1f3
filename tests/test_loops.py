"""BiO-Net and loops: shared weights, per-step norms, INT, w, carried edges, cycles, 2D/3D."""
import pytest
import torch

import skipgraph
from skipgraph.compile.summary import count_params
from skipgraph.errors import SpecError
from tests.conftest import SPECS

BIONET = SPECS / "bionet.yaml"
CONVS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Conv3d, torch.nn.ConvTranspose3d)


def conv_params(model):
    seen, total = set(), 0
    for m in model.modules():
        if isinstance(m, CONVS):
            for p in m.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
    return total


def keras_count(model):
    """What Keras' count_params reports: trainable + BN moving statistics."""
    return count_params(model) + sum(b.numel() for n, b in model.named_buffers() if "running" in n)


@pytest.mark.parametrize("t", [1, 2, 3])
def test_conv_parameters_match_the_paper_at_every_t(t):
    assert conv_params(skipgraph.build(BIONET, t=t)) == 14_954_305


def test_t_changes_only_the_bn_count():
    counts = [count_params(skipgraph.build(BIONET, t=t)) for t in (1, 2, 3)]
    step = counts[1] - counts[0]
    assert counts[2] - counts[1] == step > 0
    model = skipgraph.build(BIONET, t=2)
    bn = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert count_params(model) == 14_954_305 + 2 * bn


def test_conv_weights_are_the_same_tensors_and_bn_differs_per_iteration():
    model = skipgraph.build(BIONET, t=3, base=4)
    for k in (2, 3):
        assert model.get_submodule(f"E0_t{k}").conv1.weight is model.E0.conv1.weight
        assert model.get_submodule(f"E0_t{k}").norm1 is not model.E0.norm1
        assert model.get_submodule(f"up_D1_t{k}_D0_t{k}").resample.weight is \
            model.get_submodule("up_D1_D0").resample.weight
    assert model.S.conv1.weight is not model.E0.conv1.weight


def test_shared_norm_option(write_spec):
    text = BIONET.read_text().replace("norm: per_step", "norm: shared")
    model = skipgraph.build(write_spec(text), t=3, base=4)
    assert not hasattr(model, "E0_t2")
    assert "self.E0(" in model.code and model.code.count("self.E0(") == 3


def test_int_changes_the_last_stage_input_width():
    ir = skipgraph.load_ir(BIONET, t=3, int=True)
    assert ir.node("L").in_channels == 32 * 3
    assert skipgraph.load_ir(BIONET, t=3).node("L").in_channels == 32


def test_w_keeps_backward_skips_at_the_deepest_levels():
    ir = skipgraph.load_ir(BIONET, t=2, w=2)
    carried = {(e.src, e.dst) for e in ir.edges() if e.kind == "backward"}
    assert carried == {("D[2]@1", "E[2]@2"), ("D[3]@1", "E[3]@2")}
    assert ir.node("E[0]@1").in_channels == 32 and ir.node("E[3]@1").in_channels == 2 * 256


def test_first_iteration_duplicates_the_input():
    model = skipgraph.build(BIONET, t=2, base=4)
    assert "E0_in = torch.cat([S_maxpool2, S_maxpool2], dim = 1)" in model.code


# The paper's ablation table (Tab. 2) from the same file: #params are Keras counts (BN moving
# statistics included) rounded to 0.1M. x1.25 and x0.75 come out at 23.4M / 8.4M against the
# paper's 23.5M / 8.5M: the paper does not state how it rounds 32 * 2^i * n (int() here gives
# 40..640 and 24..384), so those two rows are reproduced to 0.1M only.
@pytest.mark.parametrize("overrides, paper, ours", [
    ({}, 15.0, 15.0), ({"scale": 0.5}, 3.8, 3.8), ({"scale": 0.25}, 0.9, 0.9),
    ({"w": 3}, 15.0, 15.0), ({"w": 2}, 14.9, 14.9), ({"int": True, "t": 3}, 15.0, 15.0),
    ({"l": 3}, 3.8, 3.8), ({"l": 2}, 0.9, 0.9),
    ({"scale": 1.25}, 23.5, 23.4), ({"scale": 0.75}, 8.5, 8.4),
])
def test_ablation_table(overrides, paper, ours):
    model = skipgraph.build(BIONET, **{"t": 1, **overrides})
    assert round(keras_count(model) / 1e6, 1) == ours
    assert abs(ours - paper) <= 0.1 + 1e-9


@pytest.mark.parametrize("t", [1, 2, 3])
@pytest.mark.parametrize("dims, size", [(2, 32), (3, 32)])
def test_forward_backward(t, dims, size):
    model = skipgraph.build(BIONET, t=t, dims=dims, base=2, l=3, seed=0).train()
    x = torch.randn(2, 3, *[size] * dims)
    y = model(x)
    assert y.shape == (2, 1, *[size] * dims)
    y.mean().backward()
    assert model.E0.conv1.weight.grad is not None


def test_bio_linknet_sum_fusion():
    ir = skipgraph.load_ir(SPECS / "bio_linknet.yaml", t=2)
    assert ir.node("E[1]@1").in_channels == 64 and ir.node("D[1]@2").in_channels == 64
    counts = [count_params(skipgraph.build(SPECS / "bio_linknet.yaml", t=t)) for t in (1, 2)]
    assert conv_params(skipgraph.build(SPECS / "bio_linknet.yaml", t=1)) == \
        conv_params(skipgraph.build(SPECS / "bio_linknet.yaml", t=2))
    assert counts[0] < counts[1]


def test_illegal_cycle_is_named(write_spec):
    text = BIONET.read_text().replace(
        '  out:    {from: "D[0]", to: L',
        '  loop_back: {from: "D[0]", to: "E[0]"}\n  out:    {from: "D[0]", to: L')
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(text))
    d = info.value.diagnostics[0]
    assert d.code == "cycle-outside-loop" and "loop_back" in d.message
    assert "E[0]@1" in d.message and "D[0]@1" in d.message


def test_carried_edge_must_stay_in_the_loop_and_on_one_level(write_spec):
    text = BIONET.read_text().replace('backward: {from: "D[i]", to: "E[i]"',
                                      'backward: {from: "D[i-1]", to: "E[i]"')
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(text))
    assert "level-mismatch" in info.value.codes
    text = BIONET.read_text().replace('backward: {from: "D[i]", to: "E[i]"',
                                      'backward: {from: "S", to: "E[i]"')
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(text))
    assert "must join two nodes of the loop" in str(info.value)


def test_binding_patterns_hold_only_variables(write_spec):
    text = BIONET.read_text().replace('backward: {from: "D[i]", to: "E[i]"',
                                      'backward: {from: "D[i]", to: "E[i+1]"')
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(text))
    assert info.value.codes == ["bad-expression"]


def test_loop_limit(write_spec):
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(BIONET, t=10_000)
    assert info.value.codes == ["resource-limit"]


def test_unrolled_module_compiles_without_graph_breaks():
    import torch._dynamo
    model = skipgraph.build(BIONET, t=3, base=2, l=2).eval()
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(torch.randn(1, 3, 16, 16))
    assert explanation.graph_break_count == 0

"""UNet3+ and UNet#: counts derived from the authors' conventions, heads, CGM, 2D/3D."""
import pytest
import torch

import skipgraph
from skipgraph.compile.summary import count_params
from tests.conftest import SPECS


def conv(cin, cout, k=3, dims=2):
    return cin * cout * k**dims + cout


def bn(c):
    return 2 * c


def unet3p_count(widths=(64, 128, 256, 512, 1024), cat=64, cin=3, classes=1):
    """Term by term from the UNet3+ authors' code (docs/conventions.md §3)."""
    enc, c_prev = 0, cin
    for w in widths:                       # 2 x (3x3 conv -> BN -> ReLU)
        enc += conv(c_prev, w) + bn(w) + conv(w, w) + bn(w)
        c_prev = w
    depth = len(widths) - 1
    up = cat * (depth + 1)                 # 320
    dec = 0
    for i in range(depth):                 # decoder stage at level i
        sources = [widths[k] for k in range(i + 1)]           # shallower + same-level encoder
        sources += [up] * (depth - 1 - i)                     # deeper decoder stages
        sources += [widths[depth]]                            # the bottleneck
        dec += sum(conv(c, cat) + bn(cat) for c in sources)   # one conv per input
        dec += conv(up, up) + bn(up)                          # fusion conv 320 -> 320
    return enc + dec + conv(up, classes)   # 3x3 head


def test_unet3p_count_matches_the_derivation():
    assert unet3p_count() == 26_971_777
    assert count_params(skipgraph.build(SPECS / "unet3p.yaml")) == unet3p_count()


def test_unet3p_ds_and_cgm_counts():
    ds_heads = 3 * conv(320, 1) + conv(1024, 1)
    cgm = 1024 * 2 + 2  # 1x1 conv to 2
    assert count_params(skipgraph.build(SPECS / "unet3p.yaml", ds=True)) == \
        unet3p_count() + ds_heads == 26_989_637
    assert count_params(skipgraph.build(SPECS / "unet3p.yaml", cgm=True)) == \
        unet3p_count() + cgm


@pytest.mark.parametrize("overrides, expected", [
    ({}, 9_661_473),                        # fs = 16 (default; closest to the paper's 9.71M)
    ({"fs": 32}, 10_159_617),
    ({"fs_per_level": True}, 11_063_361),
])
def test_unet_sharp_counts_for_each_reading(overrides, expected):
    assert count_params(skipgraph.build(SPECS / "unet_sharp.yaml", **overrides)) == expected


def test_unet_sharp_full_scale_inputs_follow_eq1():
    ir = skipgraph.load_ir(SPECS / "unet_sharp.yaml")
    srcs = [e.src for e in ir.in_edges("X[0,4]")]
    assert srcs == ["X[0,0]", "X[0,1]", "X[0,2]", "X[0,3]", "X[2,2]", "X[3,1]", "X[4,0]",
                    "X[1,3]"]
    assert [e.resample.factor for e in ir.in_edges("X[0,4]") if e.family == "full"] == [4, 8, 16]
    assert [e.src for e in ir.in_edges("X[0,2]")] == ["X[0,0]", "X[0,1]", "X[2,0]", "X[1,1]"]


def test_unet_sharp_eight_heads_and_targets():
    model = skipgraph.build(SPECS / "unet_sharp.yaml", base=4, ds=True).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert list(out) == ["X[0,1]", "X[0,2]", "X[0,3]", "X[0,4]", "X[1,3]", "X[2,2]", "X[3,1]",
                         "X[4,0]"]
    assert out["X[0,4]"].shape == (2, 1, 32, 32) and out["X[2,2]"].shape == (2, 1, 8, 8)
    assert model.ir.heads["X[1,3]"].settings.kernel == 3 and model.ir.heads["X[0,1]"].settings.kernel == 1


def test_cgm_gates_its_heads():
    model = skipgraph.build(SPECS / "unet_sharp.yaml", seed=0, base=4, ds=True, cgm=True).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = model.graph_module(training=True)(x)
        for head in model.ir.heads.values():
            if head.type != "seg":
                continue
            decision = out[head.gate].argmax(1)
            for n in range(3):
                if decision[n] == 0:
                    assert torch.all(out[head.id][n] == 0)
        assert out["cls@X[4,0]"].shape == (3, 2)
        torch.testing.assert_close(out["cls@X[4,0]"].sum(1), torch.ones(3))
    mlp = model.get_submodule("cls_X4_0").mlp
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp) == 2  # two stages on X[4,0]
    assert sum(isinstance(m, torch.nn.Linear) for m in model.get_submodule("cls_X0_4").mlp) == 1


def test_unet3p_cgm_gates_every_head():
    ir = skipgraph.load_ir(SPECS / "unet3p.yaml", ds=True, cgm=True)
    assert {h.gate for h in ir.heads.values() if h.type == "seg"} == {"cls@E[4]"}


@pytest.mark.parametrize("spec, kw", [("unet3p", {"base": 4, "cat": 2}),
                                      ("unet_sharp", {"base": 4, "fs": 2})])
@pytest.mark.parametrize("dims, size", [(2, 32), (3, 16)])
def test_forward_backward_2d_3d_with_all_heads(spec, kw, dims, size):
    model = skipgraph.build(SPECS / f"{spec}.yaml", seed=0, dims=dims, ds=True, cgm=True,
                            **kw).train()
    out = model(torch.randn(2, 3, *[size] * dims))
    sum(v.float().mean() for v in out.values()).backward()
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *[size] * dims)).shape == (2, 1, *[size] * dims)


def test_ensemble_of_mixed_resolutions_is_refused(write_spec):
    from skipgraph.errors import SpecError
    text = (SPECS / "unet_sharp.yaml").read_text().replace(
        'output: {mode: select, head: "X[0,${depth}]"}',
        "output: {mode: ensemble, heads: ['X[0,4]', 'X[2,2]']}")
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(text), ds=True)
    assert info.value.codes == ["level-mismatch"]

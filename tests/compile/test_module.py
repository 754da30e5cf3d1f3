import copy
import re
import io
import pickle

import pytest
import torch

import skipgraph
from skipgraph.compile.summary import count_params, summarize
from skipgraph.errors import SpecError
from tests.conftest import SPECS


@pytest.fixture(scope="module")
def upp_ds():
    return skipgraph.build(SPECS / "unet_pp.yaml", seed=0, base=4, depth=3, ds=True)


def test_state_dict_keys_are_named_after_nodes(upp_ds):
    keys = set(upp_ds.state_dict())
    assert {"X0_0.conv1.weight", "X0_1.conv2.bias", "up_X1_0_X0_1.resample.weight",
            "head_X0_3.weight"} <= keys
    assert not any(k.startswith("_") for k in keys)


def test_generated_code_is_straight_line_and_readable(upp_ds):
    code = upp_ds.code
    assert "X0_1 = self.X0_1(X0_1_in)" in code
    assert "torch.cat([X0_0, up_X1_0_X0_1], dim = 1)" in code
    assert "for " not in code and "if " not in code
    assert re.search(r"X0_0 = (\w+ = )*None", code)  # values freed after their last use


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = skipgraph.build(SPECS / "unet.yaml", seed=7, base=4, depth=2)
    after = torch.rand(1)
    b = skipgraph.build(SPECS / "unet.yaml", seed=7, base=4, depth=2)
    c = skipgraph.build(SPECS / "unet.yaml", seed=8, base=4, depth=2)
    assert torch.equal(before, after)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a.state_dict()["X0_0.conv1.weight"],
                           c.state_dict()["X0_0.conv1.weight"])


def test_training_returns_every_head_eval_returns_the_ensemble(upp_ds):
    x = torch.randn(2, 1, 16, 16)
    upp_ds.train()
    heads = upp_ds(x)
    assert list(heads) == ["X[0,1]", "X[0,2]", "X[0,3]"]
    upp_ds.eval()
    with torch.no_grad():
        heads = upp_ds.graph_module(training=True)(x)
        ens = upp_ds(x)
    torch.testing.assert_close(ens, torch.stack(list(heads.values())).mean(0))


def test_select_mode_computes_only_what_the_head_needs():
    model = skipgraph.build(SPECS / "unet_pp.yaml", base=4, depth=3)
    assert "X0_3" in model.code and "head_X0_3" in model.code


def test_prune_shares_weights_and_matches_the_full_model(upp_ds):
    upp_ds.eval()
    x = torch.randn(1, 1, 16, 16)
    full = upp_ds.graph_module(training=True)(x)
    for head in upp_ds.heads:
        small = upp_ds.prune(head)
        small.eval()
        with torch.no_grad():
            assert torch.equal(small(x), full[head])
        small_sd, full_sd = small.state_dict(), upp_ds.state_dict()
        assert set(small_sd) <= set(full_sd)
        assert all(small_sd[k].data_ptr() == full_sd[k].data_ptr() for k in small_sd)
    assert count_params(upp_ds.prune("X[0,1]")) < count_params(upp_ds.prune("X[0,3]"))
    with pytest.raises(KeyError):
        upp_ds.prune("X[9,9]")


def test_unetpp_pruned_to_l3_keeps_about_a_quarter():
    model = skipgraph.build(SPECS / "unet_pp.yaml", ds=True)
    kept = count_params(model.prune("X[0,3]")) / count_params(model)
    assert round(kept * 100, 1) == 24.4  # the paper's 75.6% reduction


def test_deepcopy_and_pickle_keep_behaviour(upp_ds):
    upp_ds.eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        ref = upp_ds(x)
        clone = copy.deepcopy(upp_ds)
        assert torch.equal(clone(x), ref)
        assert clone.X0_0.conv1.weight.data_ptr() != upp_ds.X0_0.conv1.weight.data_ptr()
        buf = io.BytesIO()
        pickle.dump(upp_ds, buf)
        again = pickle.loads(buf.getvalue())
        assert torch.equal(again(x), ref)


def test_state_dict_round_trip_between_builds():
    a = skipgraph.build(SPECS / "unet.yaml", seed=1, base=4, depth=2, norm="batch").eval()
    b = skipgraph.build(SPECS / "unet.yaml", seed=2, base=4, depth=2, norm="batch").eval()
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_summary_rows_and_flops():
    model = skipgraph.build(SPECS / "unet.yaml", base=4, depth=2)
    s = summarize(model, (1, 1, 32, 32))
    rows = {r.id: r for r in s.nodes}
    assert rows["X[1,1]"].output_shape == [1, 8, 16, 16]
    assert sum(r.params for r in s.nodes) == s.params == count_params(model)
    assert s.flops > 0 and s.output_shapes["output"] == [1, 1, 32, 32]
    with pytest.raises(SpecError):
        summarize(model, (1, 1, 30, 30))


@pytest.mark.parametrize("up, kernel", [("transpose", 2), ("transpose", 3), ("transpose", 4),
                                        ("nearest", None), ("bilinear", None), ("upconv", 3),
                                        ("upconv", 5)])
def test_upsampling_variants_keep_shapes(write_spec, up, kernel):
    from tests.conftest import TINY_SPEC
    setting = f", kernel: {kernel}" if kernel else ""
    path = write_spec(TINY_SPEC.replace("params:", f"defaults: {{up: {{op: {up}{setting}}}}}"
                                        "\nparams:"))
    model = skipgraph.build(path).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_strided_conv_down_and_sum_merge(write_spec):
    from tests.conftest import TINY_SPEC
    text = TINY_SPEC.replace("params:", "defaults: {down: {op: strided_conv, kernel: 3, out: "
                             "target}}\nparams:").replace("width: base * 2**i}",
                                                          "width: base * 2**i, merge: sum}")
    model = skipgraph.build(write_spec(text)).eval()
    assert "operator.add" in model.code or "add" in model.code
    with torch.no_grad():
        assert model(torch.randn(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_conv_act_norm_order_and_group_norm(write_spec):
    from tests.conftest import TINY_SPEC
    text = TINY_SPEC.replace("params:", "defaults: {block: {order: can, norm: {type: group, "
                             "groups: 2}, act: elu, dropout: 0.1}}\nparams:")
    model = skipgraph.build(write_spec(text))
    names = [n for n, _ in model.X0_0.named_children()]
    assert names == ["conv1", "act1", "norm1", "drop1", "conv2", "act2", "norm2", "drop2"]


def test_a_cgm_called_at_batch_1_in_train_mode_is_named_with_the_batch_rule():
    """torch's own message ("Expected more than 1 value per channel") names no layer."""
    from skipgraph.graph.contract import InputShapeError
    model = skipgraph.build("unet_sharp", depth=2, base=4, cgm=True, seed=0).train()
    with pytest.raises(InputShapeError, match=r"the CGM `.*` has BatchNorm1d layers, which need "
                                              r"at least 2 images per training step; a step "
                                              r"here has 1"):
        model(torch.randn(1, 3, 32, 32))
    model(torch.randn(2, 3, 32, 32))  # the rule's own boundary trains
    model.eval()(torch.randn(1, 3, 32, 32))  # and eval needs no batch


GATE_SPEC = """\
skipgraph: 1
name: gate
params: {in_channels: 2, classes: 1, gate_width: 1}
nodes:
  F: {level: 0, column: 0, width: 4}
  A: {level: 0, column: 1, width: gate_width, block: {convs: 1, kernel: 1, norm: none, act: sigmoid}}
  G: {level: 0, column: 2, width: 4, merge: product, block: {type: identity, norm: none, act: none}}
edges:
  stem:    {from: input, to: F}
  attend:  {from: F, to: A}
  feature: {from: F, to: G}
  gate:    {from: A, to: G}
heads:
  seg: {on: G, out: classes}
"""


@pytest.mark.parametrize("gate_width", [1, 4])
def test_a_product_merge_multiplies_its_inputs_broadcasting_one_channel(write_spec, gate_width):
    """PAN's attention maps: a 1-channel map gates every channel, or one gate per channel."""
    model = skipgraph.build(write_spec(GATE_SPEC), gate_width=gate_width, seed=0).eval()
    assert "mul" in model.code
    x = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        feature = model.F(x)
        expected = feature * model.A(feature)
        assert torch.allclose(model.head_G(expected), model(x), atol=1e-6)
    assert "G = identity(mul[F, A])" in str(model.ir)


def test_a_product_of_unequal_widths_is_a_positioned_channel_mismatch(write_spec):
    with pytest.raises(SpecError) as err:
        skipgraph.build(write_spec(GATE_SPEC), gate_width=3)
    text = str(err.value)
    assert "product merge at G gets different channel counts" in text
    assert "1-channel inputs" in text and "spec.yaml:" in text

"""nnU-Net v2 integration without running nnU-Net's pipeline (test_nnunet_docs.py runs it, as
docs/nnunet.md writes it): the plans rewrite, the network nnU-Net builds from it, the
deep-supervision mapping. Tests that need nnunetv2 (the `nnunet` extra, installed for `make test-slow`) are marked slow."""
import copy
import json

import pytest

import skipgraph
from skipgraph.cli import main
from skipgraph.integrations.nnunet.plans import PlansError, skipgraph_plans
from tests.conftest import SPECS

# nnU-Net 2.8's plans for MSD hippocampus (Dataset004), cut to what the rewrite reads
ARCH = "dynamic_network_architectures.architectures.unet.PlainConvUNet"


def _config(dims: int, feats: list[int], patch: list[int], strides=None, kernels=None) -> dict:
    n = len(feats)
    return {
        "data_identifier": f"nnUNetPlans_{dims}d", "batch_size": 2, "patch_size": patch,
        "architecture": {"network_class_name": ARCH, "arch_kwargs": {
            "n_stages": n, "features_per_stage": feats,
            "conv_op": f"torch.nn.modules.conv.Conv{dims}d",
            "kernel_sizes": kernels or [[3] * dims] * n,
            "strides": strides or [[1] * dims] + [[2] * dims] * (n - 1),
            "n_conv_per_stage": [2] * n, "n_conv_per_stage_decoder": [2] * (n - 1),
            "conv_bias": True,
            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dims}d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
            "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}


PLANS = {"dataset_name": "Dataset004_Hippocampus", "plans_name": "nnUNetPlans",
         "configurations": {
             "2d": _config(2, [32, 64, 128, 256], [56, 40]),
             "3d_fullres": _config(3, [32, 64, 128, 256], [40, 56, 40]),
             "3d_cascade": {"inherits_from": "3d_fullres"}}}


def test_plans_map_the_planned_architecture_onto_declared_params():
    new, used = skipgraph_plans(PLANS, "nnunet_plain", {}, "P")
    assert new["plans_name"] == "P" and set(used) == {"2d", "3d_fullres"}
    assert used["3d_fullres"] == {"dims": 3, "stages": 4, "base": 32, "max_width": 256,
                                  "ds": True, "kernel": 3, "convs": 2, "decoder_convs": 2}
    arch = new["configurations"]["3d_fullres"]["architecture"]
    assert arch["network_class_name"] == "skipgraph.integrations.nnunet.SkipGraphNetwork"
    assert arch["arch_kwargs"]["strides"] == PLANS["configurations"]["3d_fullres"][
        "architecture"]["arch_kwargs"]["strides"]  # nnU-Net's pool_op_kernel_sizes
    assert arch["_kw_requires_import"] == []
    assert new["configurations"]["3d_fullres"]["data_identifier"] == "nnUNetPlans_3d"
    assert PLANS["configurations"]["2d"]["architecture"]["network_class_name"] == ARCH


def test_plans_only_map_what_the_spec_declares_and_sets_win():
    _, used = skipgraph_plans(PLANS, "unet_pp", {"base": 16}, "P", ["2d"])
    assert used == {"2d": {"dims": 2, "depth": 3, "base": 16, "ds": True}}


def test_anisotropic_plans_map_onto_per_stage_strides_and_kernels():
    plans = copy.deepcopy(PLANS)
    arch = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    arch.update(strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
                kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]])
    _, used = skipgraph_plans(plans, "nnunet_plain", {}, "P", ["3d_fullres"])
    assert used["3d_fullres"]["strides"] == [[1, 2, 2], 2, 2]
    assert used["3d_fullres"]["kernels"] == [[1, 3, 3], 3, 3, 3]
    ir = skipgraph.load_ir("nnunet_plain", **used["3d_fullres"])
    assert skipgraph.graph.total_stride(ir) == (4, 8, 8)
    # a spec without per-stage strides cannot follow them
    with pytest.raises(PlansError, match=r"stage 1 has strides \[1, 2, 2\]; the spec "
                       r"resamples by \[2, 2, 2\] there \(give the spec a `strides` param"):
        skipgraph_plans(plans, "unet_pp", {}, "P", ["3d_fullres"])


def test_residual_encoder_plans_map_blocks_per_stage():
    """nnU-Net's ResEnc plans (ResidualEncoderUNet, n_blocks_per_stage) onto nnunet_resenc,
    anisotropic strides and kernels included."""
    plans = copy.deepcopy(PLANS)
    arch = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    arch.update(strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
                kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                n_blocks_per_stage=[1, 3, 4, 6])
    _, used = skipgraph_plans(plans, "nnunet_resenc", {}, "P", ["3d_fullres"])
    assert used["3d_fullres"]["blocks"] == [1, 3, 4, 6]
    assert used["3d_fullres"]["strides"] == [[1, 2, 2], 2, 2]
    ir = skipgraph.load_ir("nnunet_resenc", **used["3d_fullres"])
    assert [ir.node(f"E[{i}]").block.units for i in range(4)] == [1, 3, 4, 6]
    assert skipgraph.graph.total_stride(ir) == (4, 8, 8)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["architecture"]["arch_kwargs"].update(n_conv_per_stage=[2, 2, 3, 3]),
     r"n_conv_per_stage \[2, 2, 3, 3\] differ"),
    (lambda c: c.update(patch_size=[40, 56, 36]),
     r"not divisible by the spec's total stride \[8, 8, 8\]"),
    (lambda c: c["architecture"]["arch_kwargs"].pop("strides"), "`features_per_stage` / `strides`"),
    (lambda c: c.pop("patch_size"), "no `patch_size`"),
])
def test_plans_the_spec_cannot_express_are_refused_with_the_configuration(change, message):
    plans = copy.deepcopy(PLANS)
    change(plans["configurations"]["3d_fullres"])
    with pytest.raises(PlansError, match=f"configuration `3d_fullres`: .*{message}"):
        skipgraph_plans(plans, "nnunet_plain", {}, "P")


@pytest.mark.parametrize("name, configs, message", [
    ("nnUNetPlans", None, "new plans identifier"), ("a/b", None, "new plans identifier"),
    ("P", ["3d_cascade"], "no architecture of their own"), ("P", ["3d_lowres"], "3d_lowres")])
def test_bad_names_and_configurations(name, configs, message):
    with pytest.raises(PlansError, match=message):
        skipgraph_plans(PLANS, "unet_pp", {}, name, configs)


def test_plans_command_writes_the_identifier_and_prints_the_commands(tmp_path, capsys):
    src = tmp_path / "nnUNetPlans.json"
    src.write_text(json.dumps(PLANS))
    assert main(["nnunet", "plans", str(src), "--spec", "unet_pp", "--set", "base=16",
                 "--name", "nnUNetPlansSG", "-c", "3d_fullres"]) == 0
    out = capsys.readouterr().out
    written = json.loads((tmp_path / "nnUNetPlansSG.json").read_text())
    assert written["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["spec"] \
        == "unet_pp"
    assert "3d_fullres: dims=3, depth=3, base=16, ds=true" in out
    assert ("skipgraph nnunet train Dataset004_Hippocampus 3d_fullres 0 -p nnUNetPlansSG "
            "-tr nnUNetTrainerSkipGraph") in out


@pytest.mark.parametrize("argv, message", [
    (["--spec", "unet_pp", "--name", "nnUNetPlans"], "new plans identifier"),
    (["--spec", "unet_ppp", "--name", "X"], "did you mean `unet_pp`"),
    (["--spec", "unet_pp", "--set", "depth=5", "--name", "X"], "not divisible"),
    (["--spec", "unet_pp", "--set", "widht=3", "--name", "X"], "widht"),
])
def test_plans_command_errors_exit_2(tmp_path, capsys, argv, message):
    src = tmp_path / "nnUNetPlans.json"
    src.write_text(json.dumps(PLANS))
    assert main(["nnunet", "plans", str(src), *argv]) == 2
    assert message in capsys.readouterr().err


def test_plans_command_missing_or_broken_file(tmp_path, capsys):
    assert main(["nnunet", "plans", str(tmp_path / "no.json"), "--spec", "unet_pp",
                 "--name", "X"]) == 2
    (tmp_path / "bad.json").write_text("{")
    assert main(["nnunet", "plans", str(tmp_path / "bad.json"), "--spec", "unet_pp",
                 "--name", "X"]) == 2
    assert "not JSON" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["-i", "in", "-o", "out", "-d", "4"], ["4", "2d", "0", "-h"]])
def test_train_and_predict_pass_every_argument_to_nnunet(argv):
    from skipgraph.cli import make_parser
    for command in ("train", "predict"):
        args = make_parser().parse_args(["nnunet", command, *argv])
        assert args.args == argv


# --- the network nnU-Net builds -------------------------------------------------------------

def _network(plans: dict, config: str, num_classes: int = 3, ds: bool = True):
    pytest.importorskip("nnunetv2")
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    arch = plans["configurations"][config]["architecture"]
    return get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"],
                                  arch["_kw_requires_import"], 1, num_classes,
                                  deep_supervision=ds)


def _count(net) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("config", ["2d", "3d_fullres"])
def test_nnunet_plain_from_the_plans_has_nnunets_parameter_count(config):
    new, _ = skipgraph_plans(PLANS, "nnunet_plain", {}, "P")
    ours, theirs = _network(new, config), _network(PLANS, config)
    assert type(theirs).__name__ == "PlainConvUNet"
    assert _count(ours) == _count(theirs) == {"2d": 1_928_489, "3d_fullres": 5_603_177}[config]


@pytest.mark.slow
def test_six_stage_2d_plans_give_nnunets_count():
    plans = {"plans_name": "p", "configurations": {
        "2d": _config(2, [32, 64, 128, 256, 512, 512], [256, 256])}}
    new, _ = skipgraph_plans(plans, "nnunet_plain", {}, "P")
    assert _count(_network(new, "2d", 2)) == _count(_network(plans, "2d", 2)) == 20_619_082


@pytest.mark.slow
def test_outputs_follow_nnunets_deep_supervision_convention():
    import torch
    new, _ = skipgraph_plans(PLANS, "unet_pp", {"base": 4}, "P")
    net = _network(new, "3d_fullres")
    x = torch.randn(1, 1, 40, 56, 40)
    out = net(x)
    assert net.heads == ["X[0,3]", "X[0,2]", "X[0,1]"]  # the main head first
    assert [o.shape for o in out] == [(1, 3, 40, 56, 40)] * 3
    assert net.deep_supervision_scales() == [[1.0, 1.0, 1.0]] * 3
    assert min(o.min().item() for o in out) < 0  # logits: the spec's sigmoid is dropped
    net.decoder.deep_supervision = False  # what nnU-Net's trainer toggles
    net.eval()
    with torch.no_grad():
        main_head = net(x)
    assert main_head.shape == (1, 3, 40, 56, 40)


@pytest.mark.slow
def test_plain_scales_and_weights_are_nnunets():
    from skipgraph.integrations.nnunet.network import deep_supervision_weights
    new, _ = skipgraph_plans(PLANS, "nnunet_plain", {"base": 4}, "P")
    net = _network(new, "2d")
    assert net.heads == ["D[0]", "D[1]", "D[2]"]
    assert net.deep_supervision_scales() == [[1.0, 1.0], [0.5, 0.5], [0.25, 0.25]]
    # nnU-Net: 1, 1/2, 1/4 with the lowest output not supervised, normalised
    assert deep_supervision_weights(net.ir) == pytest.approx([2 / 3, 1 / 3, 0.0])


def test_unet_pp_weights_are_equal():
    from skipgraph import load_ir
    from skipgraph.integrations.nnunet.network import deep_supervision_weights, nnunet_ir
    ir = nnunet_ir("unet_pp", {"ds": True, "depth": 3}, 1, 3)
    assert deep_supervision_weights(ir) == pytest.approx([1 / 3] * 3)
    assert all(h.activation == "none" for h in ir.heads.values())
    assert {h.activation for h in load_ir(SPECS / "unet_pp.yaml", ds=True).heads.values()} == {"sigmoid"}


def test_specs_nnunet_cannot_train_are_refused():
    pytest.importorskip("torch")
    from skipgraph.integrations.nnunet.network import nnunet_ir
    with pytest.raises(ValueError, match="not segmentation heads"):
        nnunet_ir("unet3p", {"cgm": True}, 1, 2)


@pytest.mark.slow
def test_weights_trained_with_deep_supervision_load_without_it():
    new, _ = skipgraph_plans(PLANS, "unet_pp", {"base": 4}, "P")
    trained, inference = _network(new, "2d", ds=True), _network(new, "2d", ds=False)
    inference.load_state_dict(trained.state_dict(), strict=True)


@pytest.mark.slow
def test_budget_trainers_are_made_by_name():
    pytest.importorskip("nnunetv2")
    from skipgraph.integrations.nnunet import trainer
    cls = trainer.budget_trainer("nnUNetTrainerSkipGraph_3epochs_7iters_nomirror")
    assert cls is trainer.budget_trainer("nnUNetTrainerSkipGraph_3epochs_7iters_nomirror")
    assert issubclass(cls, trainer.nnUNetTrainerSkipGraph)
    assert cls.__name__ == "nnUNetTrainerSkipGraph_3epochs_7iters_nomirror"
    for bad in ("nnUNetTrainerSkipGraph_x", "nnUNetTrainer_5epochs", "os.system"):
        with pytest.raises(AttributeError):
            trainer.budget_trainer(bad)

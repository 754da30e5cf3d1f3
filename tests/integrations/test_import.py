"""``skipgraph import`` / ``export --peer``: checkpoints made with the peers' own classes (and an
nnU-Net trainer's own ``save_checkpoint``) become skipgraph checkpoints with equal outputs, are
refused naming the first tensor that does not fit, and go back to the peer's class."""
import os
import pickle

import pytest
import torch

import skipgraph
from skipgraph.cli import main
from skipgraph.integrations.importing import import_checkpoint
from skipgraph.integrations.peers import PEERS


def _as_list(out) -> list[torch.Tensor]:
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _same_outputs(model, peer, x) -> None:
    for training in (True, False):
        model.train(training), peer.train(training)
        with torch.no_grad():
            ours, theirs = _as_list(model(x)), _as_list(peer(x))
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape
            assert (a - b).abs().max().item() <= 1e-5


def _trained(peer: torch.nn.Module) -> torch.nn.Module:
    """Non-default norm statistics and weights, as training leaves them."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in peer.state_dict().items():
            if t.is_floating_point():
                t.add_(0.05 * torch.randn(t.shape, generator=g))
                if name.endswith("running_var"):
                    t.abs_().add_(0.5)
    return peer


def _basic_unet(**kw):
    monai = pytest.importorskip("monai.networks.nets")
    return _trained(monai.BasicUNet(spatial_dims=2, in_channels=2, out_channels=3,
                                    features=(8, 8, 16, 16, 32, 8), **kw))


def _attention_unet(dims: int = 2, channels=(8, 16, 32, 64)):
    monai = pytest.importorskip("monai.networks.nets")
    return _trained(monai.AttentionUnet(spatial_dims=dims, in_channels=1, out_channels=2,
                                        channels=channels, strides=[2] * (len(channels) - 1)))


def _import(tmp_path, peer_module, peer: str, *args: str, name: str = "peer.pt"):
    src, ckpt = tmp_path / name, tmp_path / "imported.pt"
    torch.save(peer_module.state_dict(), src)
    assert main(["import", str(src), "--peer", peer, *args, "-o", str(ckpt)]) == 0
    return skipgraph.load_checkpoint(ckpt), ckpt


# --- equal outputs -------------------------------------------------------------------------

def test_monai_basic_unet_state_dict_imports_with_equal_outputs(tmp_path, capsys):
    peer = _basic_unet()
    model, _ = _import(tmp_path, peer, "monai")  # spec and features inferred from the shapes
    assert "MONAI BasicUNet as monai_basic_unet" in capsys.readouterr().out
    assert model.ir.params["f2"] == 16 and model.ir.params["classes"] == 3
    _same_outputs(model, peer, torch.randn(2, 2, 32, 32))


def test_monai_attention_unet_imports_with_equal_outputs(tmp_path):
    peer = _attention_unet()
    model, _ = _import(tmp_path, peer, "monai")
    assert model.ir.params["widths"] == [8, 16, 32, 64]
    _same_outputs(model, peer, torch.randn(2, 1, 32, 32))


def test_attention_unet_spec_has_monais_parameter_count():
    monai = pytest.importorskip("monai.networks.nets")
    peer = monai.AttentionUnet(spatial_dims=2, in_channels=1, out_channels=2,
                               channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2))
    from skipgraph.compile.summary import count_params
    model = skipgraph.build("monai_attention_unet")
    assert count_params(model) == sum(p.numel() for p in peer.parameters()) == 1_987_434


@pytest.mark.slow
def test_monai_attention_unet_3d(tmp_path):
    peer = _attention_unet(3, (4, 8, 16))
    model, _ = _import(tmp_path, peer, "monai", "--spec", "monai_attention_unet")
    _same_outputs(model, peer, torch.randn(1, 1, 16, 16, 16))


def _smp_unet(encoder: str, cls: str = "Unet"):
    pytest.importorskip("skipgraph.blocks.backbone")  # torchvision beside a CPU torch
    smp = pytest.importorskip("segmentation_models_pytorch")
    return _trained(getattr(smp, cls)(encoder, encoder_weights=None, in_channels=3, classes=2,
                                      activation="sigmoid"))


def test_smp_unet_resnet18_imports_with_equal_outputs(tmp_path):
    peer = _smp_unet("resnet18")
    model, ckpt = _import(tmp_path, peer, "smp")
    assert model.ir.params["encoder"] == "resnet18"
    _same_outputs(model, peer, torch.randn(1, 3, 64, 64))
    back = tmp_path / "back.safetensors"
    assert main(["export", str(ckpt), "--peer", "smp", "-o", str(back)]) == 0
    from safetensors.torch import load_file
    fresh = _smp_unet("resnet18")
    fresh.load_state_dict(load_file(back), strict=True)
    saved = torch.load(tmp_path / "peer.pt", weights_only=True)  # before the forward passes
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in saved.items())


@pytest.mark.slow
@pytest.mark.parametrize("encoder, cls", [("resnet34", "Unet"), ("resnet18", "UnetPlusPlus")])
def test_smp_others(tmp_path, encoder, cls):
    peer = _smp_unet(encoder, cls)
    model, _ = _import(tmp_path, peer, "smp")
    _same_outputs(model, peer, torch.randn(1, 3, 64, 64))


def test_safetensors_and_wrapped_keys(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    peer = _basic_unet()
    path = tmp_path / "peer.safetensors"
    st.save_file({f"module.{k}": v.contiguous() for k, v in peer.state_dict().items()}, path)
    model, info = import_checkpoint(path, "monai")
    assert info["spec"] == "monai_basic_unet"
    _same_outputs(model, peer, torch.randn(1, 2, 32, 32))


def test_a_state_dict_inside_a_training_dict(tmp_path):
    peer = _attention_unet()
    path = tmp_path / "train.pt"
    torch.save({"epoch": 3, "state_dict": peer.state_dict(), "best": 0.5}, path)
    model, _ = import_checkpoint(path, "monai")
    _same_outputs(model, peer, torch.randn(1, 1, 32, 32))


# --- what the imported checkpoint supports ------------------------------------------------

def test_imported_checkpoint_prunes_and_exports_to_onnx(tmp_path, capsys):
    monai = pytest.importorskip("monai.networks.nets")
    pytest.importorskip("onnxruntime")
    peer = _trained(monai.BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=2,
                                            features=(4, 4, 8, 8, 16, 4),
                                            deep_supervision=True))
    model, ckpt = _import(tmp_path, peer, "monai", "--spec", "monai_basic_unetpp",
                          "--set", "ds=true")
    x = torch.randn(1, 1, 32, 32)
    _same_outputs(model, peer, x)
    small = tmp_path / "small.pt"
    assert main(["prune", str(ckpt), "--head", "X[0,2]", "-o", str(small)]) == 0
    assert "pruned to X[0,2]" in capsys.readouterr().out
    pruned = skipgraph.load_checkpoint(small).eval()
    peer.eval()
    with torch.no_grad():
        want = peer(x)[1]  # MONAI's heads: X[0,1], X[0,2], ...
        assert (pruned(x) - want).abs().max().item() <= 1e-5
    onnx = tmp_path / "small.onnx"
    assert main(["export", str(small), "--onnx", str(onnx)]) == 0
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert abs(torch.from_numpy(got) - want).max().item() <= 1e-4


# --- refusals ------------------------------------------------------------------------------

def _refused(tmp_path, capsys, state, *args: str) -> str:
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    assert main(["import", str(path), "--peer", "monai", *args,
                 "-o", str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not (tmp_path / "out.pt").exists()
    return err


def test_a_wrongly_shaped_tensor_is_named_with_both_shapes(tmp_path, capsys):
    state = _basic_unet().state_dict()
    state["down_2.convs.conv_1.conv.weight"] = torch.zeros(16, 16, 5, 5)
    err = _refused(tmp_path, capsys, state, "--spec", "monai_basic_unet")
    assert "`down_2.convs.conv_1.conv.weight` has shape (16, 16, 5, 5), expected " \
           "(16, 16, 3, 3)" in err


def test_a_missing_tensor_is_named(tmp_path, capsys):
    state = _attention_unet().state_dict()
    del state["model.1.submodule.1.merge.adn.A.weight"]
    err = _refused(tmp_path, capsys, state, "--spec", "monai_attention_unet")
    assert "missing tensor `model.1.submodule.1.merge.adn.A.weight` (expected shape (1,)" in err


def test_an_unexpected_tensor_is_named(tmp_path, capsys):
    state = _basic_unet().state_dict()
    state["extra.weight"] = torch.zeros(3)
    err = _refused(tmp_path, capsys, state, "--spec", "monai_basic_unet")
    assert "unexpected tensor `extra.weight` (3,)" in err


def test_tensors_of_no_peer_are_refused(tmp_path, capsys):
    err = _refused(tmp_path, capsys, {"a.weight": torch.zeros(2, 2)})
    assert "match none of the peers" in err and "--spec" in err


def test_a_wrong_peer_family_and_a_missing_file(tmp_path, capsys):
    assert main(["import", str(tmp_path / "none.pt"), "--peer", "monai", "-o",
                 str(tmp_path / "o.pt")]) == 2
    assert "no such peer checkpoint" in capsys.readouterr().err
    path = tmp_path / "w.pt"
    torch.save(_basic_unet().state_dict(), path)
    assert main(["import", str(path), "--peer", "keras", "-o", str(tmp_path / "o.pt")]) == 2
    assert "--peer `keras` is not a known peer" in capsys.readouterr().err
    assert main(["import", str(path), "--peer", "monai", "--spec", "resnet_unet",
                 "-o", str(tmp_path / "o.pt")]) == 2
    assert "is not a monai peer" in capsys.readouterr().err


class _Payload:  # what a malicious pickle does: call a function while loading
    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_a_pickle_with_code_is_refused_unexecuted(tmp_path, capsys):
    payload = _Payload()
    payload.target = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": payload}, fh)
    torch.save({"x": payload}, tmp_path / "evil2.pth")
    for evil in (path, tmp_path / "evil2.pth"):
        assert main(["import", str(evil), "--peer", "monai", "-o", str(tmp_path / "o.pt")]) == 2
        assert "not a plain-data torch checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()


# --- export back to the peer ---------------------------------------------------------------

@pytest.mark.parametrize("make", [_basic_unet, _attention_unet], ids=["basic_unet", "attention"])
def test_export_round_trips_into_the_peer_class_strictly(tmp_path, capsys, make):
    peer = make()
    _, ckpt = _import(tmp_path, peer, "monai")
    out = tmp_path / "back.pth"
    assert main(["export", str(ckpt), "--peer", "monai", "-o", str(out)]) == 0
    back = torch.load(out, weights_only=True)
    fresh = type(peer)(**_init_args(peer))
    fresh.load_state_dict(back, strict=True)
    for k, v in peer.state_dict().items():
        assert torch.equal(back[k], v), k


def _init_args(peer) -> dict:
    if type(peer).__name__ == "AttentionUnet":
        return {"spatial_dims": 2, "in_channels": 1, "out_channels": 2,
                "channels": peer.channels, "strides": peer.strides}
    return {"spatial_dims": 2, "in_channels": 2, "out_channels": 3,
            "features": (8, 8, 16, 16, 32, 8)}


def test_export_of_a_spec_that_is_no_peer_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "u.pt"
    skipgraph.save_checkpoint(skipgraph.build("unet", base=4, depth=2), ckpt)
    assert main(["export", str(ckpt), "--peer", "monai", "-o", str(tmp_path / "x.pt")]) == 2
    assert "is not the network of a peer" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--peer", "monai"]) == 2
    assert "needs -o" in capsys.readouterr().err


# --- nnU-Net: a trainer's own checkpoint ---------------------------------------------------

def _nnunet_trainer_checkpoint(tmp_path, monkeypatch, arch: str, dims: int = 2):
    """``checkpoint_final.pth`` written by nnUNetTrainer.save_checkpoint itself: a trainer
    built from plans and dataset.json (no dataset: an empty preprocessed folder with one
    placeholder file, which nnU-Net only lists), one epoch's numpy-valued log, its weights
    perturbed as training would leave them."""
    pytest.importorskip("dynamic_network_architectures")
    pytest.importorskip("nnunetv2")
    import numpy as np
    from tests.integrations.test_nnunet import _config
    pre = tmp_path / "pre" / "Dataset999_Toy" / f"nnUNetPlans_{dims}d"
    pre.mkdir(parents=True)
    (pre / "case.npz").write_bytes(b"")
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "res"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    patch = [32] * dims
    config = _config(dims, [8, 16, 32, 32], patch)
    config["data_identifier"] = f"nnUNetPlans_{dims}d"
    if arch == "ResidualEncoderUNet":
        kw = config["architecture"]["arch_kwargs"]
        kw["n_blocks_per_stage"] = [1, 2, 2, 3]
        del kw["n_conv_per_stage"]
        config["architecture"]["network_class_name"] = \
            "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
    config.update(spacing=[1.0] * dims, normalization_schemes=["ZScoreNormalization"] * 2,
                  use_mask_for_norm=[False, False], batch_dice=True)
    cname = f"{dims}d" if dims == 2 else "3d_fullres"
    plans = {"dataset_name": "Dataset999_Toy", "plans_name": "nnUNetPlans",
             "original_median_spacing_after_transp": [1.0] * dims,
             "image_reader_writer": "SimpleITKIO", "transpose_forward": list(range(dims)),
             "transpose_backward": list(range(dims)), "label_manager": "LabelManager",
             "foreground_intensity_properties_per_channel": {},
             "configurations": {cname: config}, "continue_training": False}
    dataset = {"channel_names": {"0": "T1", "1": "T2"},
               "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 1,
               "file_ending": ".nii.gz"}
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    trainer = nnUNetTrainer(plans, cname, 0, dataset, device=torch.device("cpu"))
    trainer.initialize()
    _trained(trainer.network)
    trainer.on_train_epoch_end([{"loss": np.array(0.5, dtype=np.float32)}])  # numpy log
    trainer.on_epoch_start()
    path = tmp_path / "checkpoint_final.pth"
    trainer.save_checkpoint(str(path))
    return path, trainer.network


def test_nnunet_trainer_checkpoint_plain_conv_unet(tmp_path, monkeypatch, capsys):
    path, network = _nnunet_trainer_checkpoint(tmp_path, monkeypatch, "PlainConvUNet")
    with pytest.raises(Exception):  # numpy scalars: plain weights_only refuses the file
        torch.load(path, weights_only=True)
    ckpt = tmp_path / "sg.pt"
    assert main(["import", str(path), "--peer", "nnunet", "-o", str(ckpt)]) == 0
    assert "configuration 2d as nnunet_plain" in capsys.readouterr().out
    model = skipgraph.load_checkpoint(ckpt)
    assert model.ir.params["in_channels"] == 2 and model.ir.params["classes"] == 3
    _same_outputs(model, network, torch.randn(2, 2, 32, 32))
    small = tmp_path / "d0.pt"
    assert main(["prune", str(ckpt), "--head", "D[0]", "-o", str(small)]) == 0
    assert main(["export", str(small), "--onnx", str(tmp_path / "d0.onnx")]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("arch, dims", [("ResidualEncoderUNet", 2), ("PlainConvUNet", 3),
                                        ("ResidualEncoderUNet", 3)])
def test_nnunet_trainer_checkpoints(tmp_path, monkeypatch, arch, dims):
    path, network = _nnunet_trainer_checkpoint(tmp_path, monkeypatch, arch, dims)
    model, info = import_checkpoint(path, "nnunet")
    assert info["spec"] == {"PlainConvUNet": "nnunet_plain",
                            "ResidualEncoderUNet": "nnunet_resenc"}[arch]
    _same_outputs(model, network, torch.randn(1, 2, *[32] * dims))


def test_nnunet_state_dict_with_plans_file(tmp_path, monkeypatch):
    import json
    path, network = _nnunet_trainer_checkpoint(tmp_path, monkeypatch, "PlainConvUNet")
    raw = torch.load(path, weights_only=False)  # the test's own file
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps(raw["init_args"]["plans"]))
    torch.save(raw["network_weights"], tmp_path / "weights.pth")
    (tmp_path / "dataset.json").write_text(json.dumps(raw["init_args"]["dataset_json"]))
    model, info = import_checkpoint(tmp_path / "weights.pth", "nnunet", plans=plans,
                                    configuration="2d")
    assert info["dataset_json"]["labels"] == {"background": 0, "a": 1, "b": 2}
    _same_outputs(model, network, torch.randn(1, 2, 32, 32))
    with pytest.raises(ValueError, match="no configuration `3d`"):
        import_checkpoint(tmp_path / "weights.pth", "nnunet", plans=plans, configuration="3d")


def test_nnunet_plans_skipgraph_does_not_reproduce_are_refused(tmp_path, monkeypatch):
    import json
    path, _ = _nnunet_trainer_checkpoint(tmp_path, monkeypatch, "PlainConvUNet")
    raw = torch.load(path, weights_only=False)
    plans = raw["init_args"]["plans"]
    plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["norm_op"] = \
        "torch.nn.BatchNorm2d"
    (tmp_path / "p.json").write_text(json.dumps(plans))
    with pytest.raises(ValueError, match="`norm_op` is 'torch.nn.BatchNorm2d'"):
        import_checkpoint(path, "nnunet", plans=tmp_path / "p.json")


@pytest.mark.slow
def test_nnunet_export_is_a_model_folder_nnunets_predictor_loads(tmp_path, monkeypatch):
    path, network = _nnunet_trainer_checkpoint(tmp_path, monkeypatch, "PlainConvUNet")
    ckpt, folder = tmp_path / "sg.pt", tmp_path / "model"
    assert main(["import", str(path), "--peer", "nnunet", "-o", str(ckpt)]) == 0
    assert main(["export", str(ckpt), "--peer", "nnunet", "-o", str(folder)]) == 0
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    predictor = nnUNetPredictor(device=torch.device("cpu"), perform_everything_on_device=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,))
    predictor.network.load_state_dict(predictor.list_of_parameters[0], strict=True)
    x = torch.randn(1, 2, 32, 32)
    predictor.network.eval(), network.eval()
    network.decoder.deep_supervision = False
    with torch.no_grad():
        assert (predictor.network(x) - network(x)).abs().max().item() <= 1e-6


def test_every_registered_peer_has_an_import_path():
    from skipgraph.integrations.importing import peer_specs
    assert {s for family in ("nnunet", "monai", "smp") for s in peer_specs(family)} <= set(PEERS)
    assert set(peer_specs("monai")) >= {"monai_basic_unet", "monai_attention_unet"}


def test_the_library_function(tmp_path):
    peer = _attention_unet()
    path = tmp_path / "a.pt"
    torch.save(peer.state_dict(), path)
    model = skipgraph.import_peer(path, "monai", output=tmp_path / "sg.pt", kernel=3)
    _same_outputs(model, peer, torch.randn(1, 1, 32, 32))
    data = torch.load(tmp_path / "sg.pt", weights_only=True)
    assert data["extra"]["imported_from"]["spec"] == "monai_attention_unet"
    with pytest.raises(ValueError, match="match none of the peers"):
        skipgraph.import_peer(path, "monai", f0=8)  # the BasicUNet param fits no AttentionUnet

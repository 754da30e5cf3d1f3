"""What users of U-Net code report, replayed: data sizes, batch 1, fp16, loss size limits,
framework conventions, collapsed validation, and the training command's messages. Each run is
tiny (a few steps on synthetic images)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import skipgraph
from skipgraph.checkpoint import read_checkpoint
from skipgraph.cli import main
from skipgraph.losses import loss_for
from skipgraph.train import SegmentationFolder, TrainConfig, train
from skipgraph.train.guards import batch_norm_problems, check_training_setup
from skipgraph.train.loop import grad_scaler, train_step
from skipgraph.train.selection import better_epoch
from tests.conftest import SPECS

TINY = ["--epochs", "1", "--steps", "1", "--set", "base=2"]


def make_images(root, sizes, channels=1, values=(1,), seed=0):
    """One image + mask per size (H, W): a bright square labelled with ``values``."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k, (h, w) in enumerate(sizes):
        mask = np.zeros((h, w), np.uint8)
        for v in values:
            y, x = rng.integers(0, max(h - 3, 1)), rng.integers(0, max(w - 3, 1))
            mask[y:y + max(h // 3, 1), x:x + max(w // 3, 1)] = v
        image = (rng.normal(50, 10, (h, w)) + 100 * (mask > 0)).clip(0, 255).astype(np.uint8)
        if channels == 3:
            image = np.stack([image] * 3, -1)
        Image.fromarray(image).save(root / "images" / f"im{k}_{h}x{w}.png")
        Image.fromarray(mask).save(root / "masks" / f"im{k}_{h}x{w}.png")
    return root


# --- 2. data sizes -------------------------------------------------------------------------

def test_images_smaller_than_the_default_crop_are_padded(tmp_path, capsys):
    data = make_images(tmp_path / "d", [(32, 32), (48, 48)])
    assert main(["train", "unet", "--data", str(data), "--batch", "2", "--set", "depth=2",
                 *TINY, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "2 training image(s) smaller than --crop 128 (e.g. im0_32x32.png)" in out
    ds = SegmentationFolder(data, None, crop=128)
    assert [tuple(ds[k][0].shape) for k in range(2)] == [(1, 128, 128)] * 2
    image, mask = ds[0]  # a 32x32 image in a 128-px crop: the rest is zero padding
    assert (image == 0).sum() >= 128 * 128 - 32 * 32 and mask.sum() <= 32 * 32


@pytest.mark.parametrize("sizes", [[(5, 7), (20, 9)], [(17, 33), (64, 40)]])
def test_any_image_sizes_train_and_evaluate(sizes, tmp_path):
    data = make_images(tmp_path / "d", sizes)
    cfg = TrainConfig(epochs=1, steps=1, batch=2, crop=16, overrides={"base": 2, "depth": 2})
    best = train(str(SPECS / "unet.yaml"), data, tmp_path / "r", cfg, log=lambda s: None)
    assert best["epoch"] == 1 and 0 <= best["dice"] <= 1


def test_a_crop_the_stride_does_not_divide_names_the_option(tmp_path, capsys):
    data = make_images(tmp_path / "d", [(40, 40)])
    assert main(["train", "unet", "--data", str(data), "--crop", "100", *TINY,
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--crop 100 is not a multiple of the total stride 16 of unet: use --crop 96 or " \
           "--crop 112, or set `input: {pad: true}` in the spec" in err
    assert "Traceback" not in err


def test_mixed_gray_and_rgb_images_name_the_file(tmp_path):
    data = make_images(tmp_path / "d", [(16, 16)])
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(data / "images" / "rgb.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(data / "masks" / "rgb.png")
    with pytest.raises(ValueError, match=r"rgb.png has 3 channel\(s\) but im0_16x16.png has 1"):
        SegmentationFolder(data, None)


def test_a_nonpositive_crop_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "unet", "--data", str(tmp_path), "--crop", "0"])
    assert "`0` is not a whole number >= 1" in capsys.readouterr().err


# --- 3. batch 1 and BatchNorm ----------------------------------------------------------------

def test_batch_1_with_a_cgm_stops_up_front(tmp_path, capsys):
    data = make_images(tmp_path / "d", [(32, 32)] * 2, channels=3)
    args = ["train", "unet_sharp", "--data", str(data), "--set", "cgm=true", "--set",
            "depth=2", "--crop", "32", *TINY]
    assert main([*args, "--batch", "1", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert ("unet#: the CGM `cls@X[0,1]` has BatchNorm1d layers, which need at least 2 images per "
            "training step; a step here has 1") in err and "use --batch 2" in err
    assert "Traceback" not in err and "Expected more than 1 value" not in err
    assert main([*args, "--batch", "2", "--out", str(tmp_path / "b")]) == 0


def test_one_training_image_is_a_batch_of_one(tmp_path):
    data = make_images(tmp_path / "d", [(32, 32)], channels=3)
    model = skipgraph.build(SPECS / "unet_sharp.yaml", cgm=True, depth=2, base=2)
    ds = SegmentationFolder(data, None, crop=32, samples_per_image=1)
    with pytest.raises(ValueError, match="a step here has 1"):
        check_training_setup(model, ds, crop=32, batch=8)
    ds.samples_per_image = 2  # two crops of the one image: a batch of 2
    check_training_setup(model, ds, crop=32, batch=8)


def test_batch_norm_on_a_1x1_map_at_batch_1():
    model = skipgraph.build(SPECS / "unet_sharp.yaml", depth=2, base=2)  # BatchNorm everywhere
    problems = batch_norm_problems(model, crop=4, batch=1)
    assert problems and "BatchNorm at level 2, where a 4-px crop is 1 px" in problems[0]
    assert batch_norm_problems(model, crop=4, batch=2) == []
    assert batch_norm_problems(model, crop=8, batch=1) == []


# --- 5. fp16 with a gradient scaler ------------------------------------------------------

def test_fp16_step_scales_the_loss_so_no_gradient_underflows():
    torch.manual_seed(0)
    model = skipgraph.build(SPECS / "unet_pp.yaml", seed=0, base=4, depth=3, ds=True).train()
    x, y = torch.randn(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.9).float()
    cfg = TrainConfig(amp="fp16")
    scaler = grad_scaler(cfg, torch.device("cpu"))
    assert grad_scaler(TrainConfig(amp="bf16"), torch.device("cpu")) is None
    sgd = torch.optim.SGD(model.parameters(), lr=0.0)
    train_step(model, loss_for(model), sgd, x, y, cfg, scaler)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.any() for g in grads)  # every weight tensor has a gradient
    assert scaler.get_scale() == 2.0 ** 16  # no overflow at the default scale


def test_fp16_scaler_state_survives_resume(tmp_path):
    data = make_images(tmp_path / "d", [(32, 32)] * 4)
    out = tmp_path / "r"
    cfg = TrainConfig(epochs=1, steps=2, batch=2, crop=32, amp="fp16",
                      overrides={"base": 2, "depth": 2})
    train(str(SPECS / "unet.yaml"), data, out, cfg, log=lambda s: None)
    state = read_checkpoint(out / "last.pt")["extra"]["scaler"]
    assert state["scale"] == 2.0 ** 16 and state["_growth_tracker"] == 2
    cfg.epochs = 2
    train(str(SPECS / "unet.yaml"), data, out, cfg, resume=True, log=lambda s: None)
    # restored, then 2 more successful steps (a fresh scaler would count 2)
    assert read_checkpoint(out / "last.pt")["extra"]["scaler"]["_growth_tracker"] == 4


# --- 6. a loss's size limits ---------------------------------------------------------------

def test_msssim_loss_needs_larger_crops_said_before_training(tmp_path, capsys):
    data = make_images(tmp_path / "d", [(64, 64)] * 2, channels=3)
    assert main(["train", "unet3p", "--data", str(data), "--set", "depth=2", "--set",
                 "cat=2", *TINY, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert ("unet3+: its loss `focal_msssim_iou` needs outputs of at least 161 px a side, but "
            "head D[0] gets 128 px from --crop 128: use --crop 164 or larger") in err
    model = skipgraph.build(SPECS / "unet3p.yaml", depth=2, base=2, cat=2)
    ds = SegmentationFolder(data, None, crop=164)
    check_training_setup(model, ds, crop=164, batch=2)  # the size it suggests passes


# --- 7. framework conventions and collapsed validation --------------------------------------

def test_bionet_batch_norm_uses_keras_momentum_converted():
    model = skipgraph.build(SPECS / "bionet.yaml", scale=0.25, seed=0)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and {(m.momentum, m.eps) for m in norms} == {(0.99, 1e-3)}
    # one training forward: the running mean is (almost) this batch's mean, as in Keras
    bn = torch.nn.BatchNorm2d(3, momentum=norms[0].momentum, eps=norms[0].eps).train()
    x = torch.randn(4, 3, 8, 8) + 5
    bn(x)
    assert torch.allclose(bn.running_mean, 0.99 * x.mean(dim=(0, 2, 3)), atol=1e-5)


def test_norm_conventions_are_checked(write_spec, capsys):
    spec = (SPECS / "unet.yaml").read_text().replace("norm: none", "norm: batch")
    bad = write_spec(spec.replace('norm: "${norm}"', 'norm: {type: batch, convention: caffe}'))
    assert main(["check", str(bad)]) == 2
    assert "convention must be `torch` or `keras`, not 'caffe'" in capsys.readouterr().err


def test_collapsed_validation_is_warned_and_not_kept(tmp_path, monkeypatch):
    import skipgraph.train.loop as loop
    data = make_images(tmp_path / "d", [(32, 32)] * 2)
    results = iter([{"dice": 0.3, "iou": 0.2, "collapsed": False, "predicted": "both classes"},
                    {"dice": 0.0, "iou": 0.0, "collapsed": True, "predicted": "background"}])
    monkeypatch.setattr(loop, "evaluate_model", lambda *a, **k: {"mean": next(results)})
    lines = []
    cfg = TrainConfig(epochs=2, steps=1, batch=2, crop=32, overrides={"base": 2, "depth": 2})
    best = train(str(SPECS / "unet.yaml"), data, tmp_path / "r", cfg, log=lines.append)
    assert best["epoch"] == 1
    warning = [line for line in lines if line.startswith("WARNING")]
    assert len(warning) == 1 and "validation collapsed at epoch 2: the model predicts " \
        "background everywhere (Dice 0.0000)" in warning[0]
    assert read_checkpoint(tmp_path / "r" / "best.pt")["extra"]["epoch"] == 1


def test_best_epoch_rule():
    ok = {"epoch": 1, "dice": 0.2, "collapsed": False}
    assert not better_epoch({"dice": 0.9, "collapsed": True}, ok)
    assert better_epoch({"dice": 0.0, "collapsed": False}, {"epoch": 1, "dice": 0.5, "collapsed": True})
    assert better_epoch({"dice": 0.0, "collapsed": True}, {"epoch": 1, "dice": 0.0, "collapsed": True})
    assert better_epoch({"dice": 0.0, "collapsed": True}, {"dice": -1.0})
    assert not better_epoch({"dice": 0.1, "collapsed": False}, ok)


def test_evaluate_flags_one_class_everywhere(tmp_path):
    from skipgraph.train import evaluate_model
    data = make_images(tmp_path / "d", [(32, 32)] * 2)
    model = skipgraph.build(SPECS / "unet.yaml", depth=2, base=2, seed=0)
    head = next(m for n, m in model.named_children() if n.startswith("head"))
    for p in head.parameters():
        torch.nn.init.constant_(p, -10.0)  # sigmoid(-large): background everywhere
    mean = evaluate_model(model, SegmentationFolder(data, None, crop=None))["mean"]
    assert mean["collapsed"] and mean["predicted"] == "background" and mean["dice"] == 0.0
    assert mean["ms_per_image"] > 0


# --- smaller ones --------------------------------------------------------------------------

def test_train_reports_before_the_first_epoch_and_times_validation(tmp_path):
    data = make_images(tmp_path / "d", [(32, 32)] * 3)
    names = sorted(p.stem for p in (data / "images").iterdir())
    (data / "split.json").write_text(json.dumps({"train": names[1:], "val": names[:1]}))
    lines = []
    cfg = TrainConfig(epochs=1, steps=2, batch=2, crop=32, overrides={"base": 2, "depth": 2})
    train(str(SPECS / "unet.yaml"), data, tmp_path / "r", cfg, log=lines.append)
    assert lines[0].startswith("training unet (") and "2 training images" in lines[0]
    assert lines[1].startswith("first step: loss ") and lines[2].startswith("epoch 1/1")
    row = json.loads((tmp_path / "r" / "log.json").read_text())[0]
    assert row["seconds"] >= row["train_seconds"] > 0
    assert "of which training" in lines[2]


def test_predictions_png_shows_the_best_model(tmp_path, monkeypatch):
    import skipgraph.train.loop as loop
    data = make_images(tmp_path / "d", [(32, 32)] * 2)
    results = iter([{"dice": 0.5, "iou": 0.3, "collapsed": False, "predicted": "both classes"},
                    {"dice": 0.1, "iou": 0.1, "collapsed": False, "predicted": "both classes"}])
    monkeypatch.setattr(loop, "evaluate_model", lambda *a, **k: {"mean": next(results)})
    titles = []
    monkeypatch.setattr("matplotlib.figure.Figure.suptitle",
                        lambda self, text, **k: titles.append(text))
    cfg = TrainConfig(epochs=2, steps=1, batch=2, crop=32, overrides={"base": 2, "depth": 2})
    train(str(SPECS / "unet.yaml"), data, tmp_path / "r", cfg, log=lambda s: None)
    assert titles == ["predictions of the best model, epoch 1 on validation images"]


def test_help_shows_defaults(capsys):
    for command in ("train", "evaluate", "compare"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "(default:" in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "(default: 128)" in capsys.readouterr().out


def test_evaluate_object_f1_off_time_per_image_and_no_ensemble_flag(tmp_path, capsys):
    data = make_images(tmp_path / "d", [(32, 32)] * 2)
    ckpt = tmp_path / "m.pt"
    assert main(["build", "unet_pp", "--set", "ds=true", "--set", "depth=2", "--set", "base=2",
                 "--save", str(ckpt), "--json"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--data", str(data), "--split", "x",
                 "--no-object-f1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "object_f1" not in result["mean"] and "object_f1" not in result["images"][0]
    assert result["mean"]["ms_per_image"] > 0
    assert all(lv["ms_per_image"] > 0 for lv in result["pruning_levels"])
    assert main(["evaluate", str(ckpt), "--data", str(data), "--split", "x"]) == 0
    assert "ms/image" in capsys.readouterr().out.splitlines()[2]
    with pytest.raises(SystemExit):
        main(["evaluate", str(ckpt), "--data", str(data), "--ensemble"])


# --- the resource guard covers training ----------------------------------------------------

def test_training_memory_estimate_is_close_to_what_autograd_keeps():
    from skipgraph.graph.estimate import estimate_activation_bytes, estimate_training_bytes
    model = skipgraph.build(SPECS / "unet_pp.yaml", seed=0, base=4, depth=3, ds=True,
                            norm="batch").train()
    shape = [2, 1, 64, 64]
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    x, y = torch.randn(*shape), (torch.rand(*shape) > 0.5).float()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_for(model)(model(x), y)
    params = sum(p.numel() for p in model.parameters())
    measured = sum(saved.values()) + 16 * params
    estimate = estimate_training_bytes(model.ir, shape)
    assert 0.7 < estimate / measured < 1.4, (estimate, measured)
    assert estimate > estimate_activation_bytes(model.ir, shape)


def test_training_over_the_memory_budget_stops_before_training(tmp_path, capsys, monkeypatch):
    data = make_images(tmp_path / "d", [(32, 32)] * 2)
    monkeypatch.setenv("SKIPGRAPH_MAX_ACTIVATION_GB", "0.01")
    assert main(["train", "unet", "--data", str(data), "--epochs", "1", "--out",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "a training step on (8, 1, 128, 128) needs about" in err
    assert "use a smaller --crop or --batch, or raise SKIPGRAPH_MAX_ACTIVATION_GB" in err


def test_batch_norm_after_global_pooling_at_batch_1_is_named_whatever_the_crop():
    """DeepLabV3+'s image pooling (`image_pool`, batch norm on a 1x1 pooled map) cannot train
    on one image at any crop: the check and the Python API name the block and the rule."""
    from skipgraph.graph.contract import InputShapeError
    model = skipgraph.build(SPECS / "smp_deeplabv3plus.yaml", encoder="resnet18", base=4,
                            channels=8, highres=4, seed=0)
    problems = batch_norm_problems(model, crop=256, batch=1)
    assert problems and "`AP` (image_pool) has BatchNorm on its pooled map, 1 position(s) " \
        "per channel whatever the crop" in problems[0]
    assert batch_norm_problems(model, crop=64, batch=2) == []
    with pytest.raises(InputShapeError, match=r"`AP` \(image_pool\) has BatchNorm on its "
                                              r"pooled map.*a batch of 2 or more"):
        model.train()(torch.randn(1, 3, 64, 64))
    model.eval()(torch.randn(1, 3, 64, 64))  # eval mode needs no batch

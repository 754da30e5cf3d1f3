"""Issue 25, the training side: --resume with another model, collapsed runs in compare, the
predictions picture, train --help, the 1-step hint and HD95's unit. Tiny data each test writes
itself (tests/test_user_data.py has the readers' cases)."""
import json
import re

import numpy as np
import pytest
import torch

from skipgraph.cli import main
from tests.test_user_data import box_case, write_case, write_folder

TINY = ["--epochs", "1", "--steps", "1", "--batch", "2", "--crop", "16", "--set", "base=2",
        "--set", "depth=2"]


# --- 8. --resume with another spec or other --set values -----------------------------------

def test_resume_refuses_another_model_and_a_missing_run(tmp_path, capsys):
    data = write_folder(tmp_path / "d", size=16)
    out = tmp_path / "run"
    assert main(["train", "unet", "--data", str(data), *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "unet", "--data", str(data), *TINY, "--set", "base=4", "--out",
                 str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "last.pt: --resume with a different model: param `base` is 2 in the checkpoint but " \
        "4 in" in err and "resume with --set base=2, or train into a new --out" in err
    assert "Traceback" not in err
    assert main(["train", "unet_pp", "--data", str(data), *TINY, "--out", str(out),
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume with a different model: spec `name` is 'unet' in the checkpoint but " \
        "'unet++'" in err
    # the same model resumes; a folder without last.pt is an error, not a fresh start
    assert main(["train", "unet", "--data", str(data), *TINY[2:], "--epochs", "2", "--out",
                 str(out), "--resume"]) == 0
    assert len(json.loads((out / "log.json").read_text())) == 2
    capsys.readouterr()
    assert main(["train", "unet", "--data", str(data), *TINY, "--out", str(tmp_path / "new"),
                 "--resume"]) == 2
    assert "new/last.pt does not exist, so there is no run to continue" in capsys.readouterr().err


# --- compare: every collapsed run ----------------------------------------------------------

def test_compare_warns_every_collapsed_run_and_marks_the_table(tmp_path, monkeypatch, capsys):
    import skipgraph.train.compare as compare
    real, calls = compare._test_metrics, []

    def metrics(*args):
        m, n, c = real(*args)
        calls.append(len(calls))
        m["collapsed"] = len(calls) != 2  # runs 1 and 3 of 3 collapse
        m["predicted"] = "background"
        return m, n, c
    monkeypatch.setattr(compare, "_test_metrics", metrics)
    data = write_folder(tmp_path / "d", n=3, size=16)
    out = tmp_path / "cmp"
    assert main(["compare", "unet", "--data", str(data), *TINY, "--seeds", "0", "1", "2",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"written to {out / 'compare.md'}, {out / 'compare.csv'}, {out / 'compare.json'}" \
        in text  # every file with its folder
    warned = [line for line in text.splitlines() if "collapsed: on `test`" in line]
    assert [w.split(" collapsed")[0] for w in warned] == ["WARNING: unet seed 0",
                                                          "WARNING: unet seed 2"]
    table = (out / "compare.md").read_text()
    assert "collapsed runs (one class everywhere) |" in table.splitlines()[0]
    assert table.splitlines()[2].endswith("| COLLAPSED: 2 of 3 |")
    assert json.loads((out / "compare.json").read_text())[0]["collapsed"] == 2


# --- predictions.png -----------------------------------------------------------------------

def test_predictions_png_draws_truth_and_prediction_in_two_colours_with_a_legend(
        tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    import skipgraph.train.loop as loop
    from skipgraph.train import SegmentationFolder
    data = SegmentationFolder(write_folder(tmp_path / "d", size=32), "train", crop=None)

    def shifted(model, image, *args, **kwargs):  # a prediction 3 px off the truth
        truth = torch.from_numpy(data.masks[0][0]).float()
        return torch.roll(truth, 3, dims=1)[None, None]
    monkeypatch.setattr(loop, "infer", shifted)
    legends = []
    real_legend = plt.Figure.legend
    monkeypatch.setattr(plt.Figure, "legend", lambda self, *a, **k: legends.append(
        [h.get_label() for h in k["handles"]]) or real_legend(self, *a, **k))
    path = tmp_path / "p.png"
    loop._plot_predictions(plt, None, data, "cpu", path, "best model")
    assert legends == [["truth", "prediction"]]
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    green = (g > 170) & (r < 90) & (b < 90)
    magenta = (r > 170) & (b > 170) & (g < 110)
    assert green.sum() > 100 and magenta.sum() > 100  # both drawn, each in its own hue


# --- train --help --------------------------------------------------------------------------

def test_train_help_shows_help_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split()).split("options:")[1]
    for option, default in (("--epochs", "20"), ("--batch", "8"), ("--lr", "0.001"),
                            ("--samples-per-image", "4"), ("--out", "runs/train"),
                            ("--seed", "0"), ("--steps", "every batch of the epoch")):
        part = re.search(rf"{option} [A-Z_]+ (.*?)(?= --[a-z]|$)", text).group(1)
        assert f"(default: {default})" in part and len(part) > 25, (option, part)
    assert "--ignore-index VALUE" in text and "--palette JSON|FILE" in text
    assert "(default: None)" not in text and "(default: False)" not in text


# --- a 3D run with 1 step per epoch; HD95 with its unit ------------------------------------

def test_3d_one_step_hint_and_hd95_in_mm(tmp_path, capsys):
    pytest.importorskip("monai")
    for k, name in enumerate(("a", "b", "c")):
        image, label = box_case(seed=k)
        write_case(tmp_path / "v", name, image, label)
    (tmp_path / "v" / "split.json").write_text(json.dumps(
        {"train": ["a", "b"], "val": ["c"], "test": ["c"]}))
    out = tmp_path / "r"
    assert main(["train", "unet", "--data", str(tmp_path / "v"), "--set", "dims=3",
                 "--set", "depth=2", "--set", "base=2", "--set", "classes=2", "--epochs", "2",
                 "--batch", "2", "--samples-per-image", "1", "--val-every", "2",
                 "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "volumes: spacing 1.5x1x2 mm (HD95 in mm)" in log
    assert "hint: 1 optimizer step per epoch (2 volume(s) x --samples-per-image 1 / --batch 2)" \
        in log and "raise --samples-per-image" in log
    assert main(["evaluate", str(out / "best.pt"), "--data", str(tmp_path / "v")]) == 0
    assert "| class | Dice | IoU | HD95 (mm) |" in capsys.readouterr().out
    # without spacing (2D label maps) the unit is pixels
    from skipgraph.train import SegmentationFolder
    from skipgraph.train.windows import hd95_unit
    assert hd95_unit(SegmentationFolder(write_folder(tmp_path / "d", size=16), "train",
                                        crop=None)) == "px"


# --- 2. the ignore label in every loss term and metric, 2D and 3D ---------------------------

@pytest.mark.parametrize("classes,loss", [(1, "bce_dice"), (1, "focal_dice_lovasz"),
                                          (3, "dice_ce"), (3, "bce_dice")])
def test_ignored_pixels_take_no_part_in_the_loss(classes, loss):
    from skipgraph.graph import build_ir
    from skipgraph.label_rule import IGNORE, one_hot
    from skipgraph.losses import DeepSupervisionLoss
    from skipgraph.spec import load_spec
    from tests.conftest import SPECS
    spec = load_spec(str(SPECS / "unet.yaml"), {"base": 2, "depth": 2, "classes": classes})
    ir = build_ir(spec)
    head = next(h for h in ir.heads.values() if h.pixelwise)
    criterion = DeepSupervisionLoss(ir, seg=loss)
    label = torch.randint(0, max(classes, 2), (1, 16, 16))
    label[:, :4] = IGNORE
    y = one_hot(label, classes)[None]
    out = torch.randn(1, classes, 16, 16, requires_grad=True)
    base = criterion({head.id: out}, y)
    base.backward()
    assert (out.grad[..., :4, :] == 0).all() and out.grad[..., 4:, :].abs().sum() > 0
    other = out.detach().clone()
    other[..., :4, :] = torch.randn(classes, 4, 16) * 10  # anything where nothing is labelled
    assert criterion({head.id: other}, y).item() == pytest.approx(base.item(), abs=1e-6)


@pytest.mark.parametrize("classes", [1, 3])
@pytest.mark.parametrize("loss", ["bce", "dice", "focal", "iou", "lovasz_hinge", "bce_dice",
                                  "dice_ce", "focal_dice_lovasz"])
def test_a_loss_with_ignored_pixels_is_the_loss_of_the_labelled_pixels_alone(classes, loss):
    """Means and sums run over the labelled pixels only: the loss of an image whose first rows
    are ignored equals the loss of the image cropped to its labelled rows (the background
    Dice does not count ignored pixels as matched, the mean is not diluted by them)."""
    from skipgraph.graph import build_ir
    from skipgraph.label_rule import IGNORE, one_hot, probabilities
    from skipgraph.losses import DeepSupervisionLoss
    from skipgraph.spec import load_spec
    from tests.conftest import SPECS
    torch.manual_seed(0)
    spec = load_spec(str(SPECS / "unet.yaml"), {"base": 2, "depth": 2, "classes": classes})
    ir = build_ir(spec)
    head = next(h for h in ir.heads.values() if h.pixelwise)
    criterion = DeepSupervisionLoss(ir, seg=loss)
    label = torch.randint(0, max(classes, 2), (2, 16, 16))
    out = probabilities(torch.randn(2, classes, 16, 16), "none")  # what the head gives
    def target(lab):  # (N, H, W) label maps -> (N, K, H, W)
        return torch.stack([one_hot(m[None], classes) for m in lab])
    cropped = criterion({head.id: out[..., 5:, :]}, target(label[:, 5:]))
    label[:, :5] = IGNORE
    whole = criterion({head.id: out}, target(label))
    assert whole.item() == pytest.approx(cropped.item(), rel=1e-5, abs=1e-6)


def test_a_registered_loss_without_valid_gets_certain_predictions_at_ignored_pixels():
    """A user loss that does not declare ``takes_valid`` still gets no loss or gradient from
    ignored pixels (they are made certain, correct predictions before the call)."""
    from skipgraph.graph import build_ir
    from skipgraph.label_rule import IGNORE, one_hot
    from skipgraph.loss_registry import LOSSES, register_loss
    from skipgraph.losses import DeepSupervisionLoss
    from skipgraph.spec import load_spec
    from tests.conftest import SPECS
    register_loss("test_plain_bce", "torch.nn.functional:binary_cross_entropy", "plain BCE",
                  replace=True)
    try:
        ir = build_ir(load_spec(str(SPECS / "unet.yaml"), {"base": 2, "depth": 2}))
        head = next(h for h in ir.heads.values() if h.pixelwise)
        label = torch.randint(0, 2, (1, 8, 8))
        label[:, :2] = IGNORE
        out = torch.rand(1, 1, 8, 8).clamp(0.05, 0.95).requires_grad_()
        DeepSupervisionLoss(ir, seg="test_plain_bce")({head.id: out},
                                                       one_hot(label, 1)[None]).backward()
        assert (out.grad[..., :2, :] == 0).all() and out.grad[..., 2:, :].abs().sum() > 0
    finally:
        LOSSES.unregister("test_plain_bce")


def test_ignore_index_trains_and_is_left_out_of_the_metrics(tmp_path, monkeypatch, capsys):
    import skipgraph.train.evaluate as evaluate
    from skipgraph.train import SegmentationFolder, evaluate_model

    def mask(k):
        from tests.test_user_data import disc_mask
        m = disc_mask(16, seed=k)
        m[:4] = 255
        return m
    data = write_folder(tmp_path / "d", size=16, mask=mask)
    assert main(["train", "unet", "--data", str(data), *TINY, "--out", str(tmp_path / "r")]) == 2
    assert "--ignore-index 255" in capsys.readouterr().err
    assert main(["train", "unet", "--data", str(data), *TINY, "--ignore-index", "255",
                 "--out", str(tmp_path / "r")]) == 0
    # a prediction wrong only where nothing is labelled scores Dice 1
    from skipgraph.train.data import ReadOptions
    ds = SegmentationFolder(data, "val", crop=None, read=ReadOptions(ignore_index=255))

    def predict(model, x, device="cpu"):
        truth = torch.from_numpy(ds.masks[0][0] > 0)
        truth[:4] = ~truth[:4]
        return truth[None, None]
    monkeypatch.setattr(evaluate, "predict", predict)
    assert evaluate_model(None, ds)["mean"]["dice"] == 1.0
    # 3D label maps from dataset.json's ignore entry
    pytest.importorskip("monai")
    for k, name in enumerate(("a", "b")):
        image, label = box_case(seed=k)
        label[..., 6:] = 9
        write_case(tmp_path / "v", name, image, label)
    (tmp_path / "v" / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "a": 1, "ignore": 9}}))
    assert main(["train", "unet", "--data", str(tmp_path / "v"), "--set", "dims=3", "--set",
                 "depth=2", "--set", "base=2", "--set", "classes=2", "--epochs", "1",
                 "--batch", "1", "--samples-per-image", "1", "--out", str(tmp_path / "r3")]) == 0


# --- 5. a non-finite loss stops training ----------------------------------------------------

def test_a_non_finite_loss_stops_with_the_step_and_the_files(tmp_path, monkeypatch, capsys):
    import skipgraph.train.loop as loop
    real = loop.loss_for
    monkeypatch.setattr(loop, "loss_for", lambda model: (
        lambda out, y: real(model)(out, y) * float("nan")))
    data = write_folder(tmp_path / "d", size=16)
    assert main(["train", "unet", "--data", str(data), *TINY, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "the loss is nan at epoch 1, step 1; the batch held c" in err and "c0" in err \
        and "look for NaN/inf" in err and "--lr" in err and "Traceback" not in err


def test_rgba_images_with_a_3_channel_model_name_both_fixes(tmp_path, capsys):
    def rgba(k, m):
        a = np.zeros(m.shape + (4,), np.uint8)
        a[..., :3] = (m[..., None] * 200).astype(np.uint8)
        a[..., 3] = 255
        return a
    data = write_folder(tmp_path / "d", size=16, image=rgba)
    assert main(["train", "unet", "--data", str(data), *TINY, "--set", "in_channels=3",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "add --set in_channels=4 (or --drop-alpha: the images have an alpha channel)" in err
    assert main(["train", "unet", "--data", str(data), *TINY, "--set", "in_channels=3",
                 "--drop-alpha", "--out", str(tmp_path / "r")]) == 0


# --- issue-25 UX: --out folders ------------------------------------------------------------

def test_train_refuses_a_folder_holding_a_run_unless_resume_or_overwrite(tmp_path, capsys):
    data = write_folder(tmp_path / "d", size=16)
    out = tmp_path / "run"
    assert main(["train", "unet", "--data", str(data), *TINY, "--out", str(out)]) == 0
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "unet", "--data", str(data), *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds a training run (best.pt, last.pt)" in err
    assert "--resume" in err and "another --out" in err and "--overwrite" in err
    assert (out / "last.pt").read_bytes() == before  # untouched
    assert main(["train", "unet", "--data", str(data), *TINY, "--out", str(out),
                 "--overwrite"]) == 0
    # compare: its runs (and tables) likewise, with a hint of compare's own options
    cmp = tmp_path / "cmp"
    (cmp / "unet" / "seed0").mkdir(parents=True)
    (cmp / "unet" / "seed0" / "last.pt").write_bytes(b"")
    capsys.readouterr()
    assert main(["compare", "unet", "--data", str(data), *TINY, "--out", str(cmp)]) == 2
    err = capsys.readouterr().err
    assert "already holds a training run (last.pt); compare into another --out, or replace " \
        "the runs with --overwrite" in err and "--resume" not in err


@pytest.mark.parametrize("command", [
    ["train", "unet", "--data", "D", "--out", "{file}"],
    ["train", "unet", "--data", "D", "--out", "{file}/run"],
    ["compare", "unet", "--data", "D", "--out", "{file}/cmp"],
    ["eject", "unet", "-o", "{file}/x.py"],
    ["render", "unet", "-o", "{file}/x.svg"],
    ["build", "unet", "--save", "{file}/x.pt"],
    ["render", "unet", "-o", "{folder}"]])
def test_an_unusable_output_path_is_refused_before_any_work(command, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    argv = [a.format(file=tmp_path / "afile", folder=tmp_path) for a in command]
    argv = [str(write_folder(tmp_path / "d", size=16)) if a == "D" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    option = next(a for a in argv if a.startswith("-") and a not in ("--data",))
    assert option in err and ("is a file" in err or "is a folder, not a file" in err), err
    assert "Errno" not in err and "Traceback" not in err
    assert not (tmp_path / "afile").is_dir()


def test_a_failed_train_leaves_no_out_folder(tmp_path, capsys):
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir()
    out = tmp_path / "run"
    assert main(["train", "unet", "--data", str(tmp_path / "d"), *TINY, "--out", str(out)]) == 2
    assert not out.exists()


def test_the_banner_says_the_crops_the_capped_steps_use(tmp_path):
    from skipgraph.train import TrainConfig, train
    from tests.conftest import SPECS
    data = write_folder(tmp_path / "d", n=3, size=16)
    lines = []
    cfg = TrainConfig(epochs=1, steps=1, batch=2, crop=16, samples_per_image=4,
                      overrides={"base": 2, "depth": 2})
    train(str(SPECS / "unet.yaml"), data, tmp_path / "r", cfg, log=lines.append)
    # 2 training images x 4 crops = 8 drawn, 4 steps; --steps 1 uses 2 of them
    assert "2 crops of 16 px per epoch in 1 steps of batch 2 (--steps 1; a full epoch would " \
        "be 8 in 4 steps)" in lines[0]


# --- evaluate reads the data as the run was trained; hints name the command's options ------

def _instance_masks(k):  # values 0..3: instance-coloured masks, read with --binary
    m = np.zeros((16, 16), np.uint8)
    m[2:6, 2:6], m[8:12, 8:12], m[2:5, 10:14] = 1, 2, 3
    return np.roll(m, k, axis=0)


def test_evaluate_reuses_the_runs_read_options_and_hints_only_its_own(tmp_path, capsys):
    data = write_folder(tmp_path / "d", n=3, size=16, mask=_instance_masks)
    out = tmp_path / "run"
    assert main(["train", "unet", "--data", str(data), *TINY, "--out", str(out),
                 "--binary"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.pt"), "--data", str(data)]) == 0
    captured = capsys.readouterr()
    assert "as the run was trained: --binary" in captured.err and "mean over" in captured.out
    # a checkpoint without recorded options (or another model): no --set in evaluate's hint
    plain = tmp_path / "plain.pt"
    assert main(["build", "unet", *TINY[-4:], "--save", str(plain)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(plain), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "but the model has 1 class (0/1 masks); add --binary" in err
    assert "--set" not in err
    # the same data at train time: --set is train's option, so train names it
    assert main(["train", "unet", "--data", str(data), *TINY, "--out", str(tmp_path / "r2")]) == 2
    assert "--set classes=4" in capsys.readouterr().err


def test_evaluate_channel_mismatch_hint_names_no_set(tmp_path, capsys):
    data = write_folder(tmp_path / "d", n=2, size=16)
    ckpt = tmp_path / "rgb.pt"
    assert main(["build", "unet", *TINY[-4:], "--set", "in_channels=3", "--save",
                 str(ckpt)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "images have 1 channel(s) but the model takes 3" in err and "--set" not in err

"""Data loading, metrics, and tiny train / evaluate / compare / torchrun runs on synthetic data
(the real BBBC039 runs are in docs/results.md)."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from skipgraph.cli import main
from skipgraph.train import DataError, SegmentationFolder, TrainConfig, train
from skipgraph.train.metrics import dice_iou, instances, object_f1
from tests.conftest import ROOT


def make_folder(root, n=6, size=48, split=True, rgb=False):
    """Bright discs on a dark, noisy background; masks label touching discs 1 and 2."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    names = []
    yy, xx = np.mgrid[:size, :size]
    for k in range(n):
        mask = np.zeros((size, size), np.uint8)
        for v in (1, 2):
            cy, cx = rng.integers(10, size - 10, 2)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = v
        image = (rng.normal(200, 30, (size, size)) + 1500 * (mask > 0)).clip(0, 4095)
        image = image.astype(np.uint16)
        if rgb:
            Image.fromarray(np.stack([image // 16] * 3, -1).astype(np.uint8)).save(
                root / "images" / f"img{k}.png")
        else:
            Image.fromarray(image).save(root / "images" / f"img{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"img{k}.png")
        names.append(f"img{k}")
    if split:
        (root / "split.json").write_text(json.dumps(
            {"train": names[:4], "val": names[4:5], "test": names[5:]}))
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data"))


def test_dataset_reads_16bit_and_rgb(folder, tmp_path):
    ds = SegmentationFolder(folder, "train", crop=32, binary=True)
    x, y = ds[0]
    assert x.shape == (1, 32, 32) and y.shape == (1, 32, 32) and set(y.unique().tolist()) <= {0, 1}
    assert abs(float(x.mean())) < 0.5
    rgb = SegmentationFolder(make_folder(tmp_path / "rgb", n=2, split=False, rgb=True), None,
                             crop=None, binary=True)
    assert rgb.channels == 3
    multi = SegmentationFolder(folder, "train", classes=3, crop=None)
    assert multi.masks[0].shape[0] == 3 and (multi.masks[0].sum(0) == 1).all()


def test_data_errors_name_the_file(folder, tmp_path):
    bad = make_folder(tmp_path / "bad", n=2, split=False)
    (bad / "masks" / "img1.png").unlink()
    with pytest.raises(DataError, match="img1 has no file in masks/"):
        SegmentationFolder(bad, None)
    (bad / "masks" / "img1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="img1.png: cannot read"):
        SegmentationFolder(bad, None, binary=True)
    # label values the model cannot represent: never a silently binarised or clipped target
    with pytest.raises(DataError, match=r"img0.png: label values \{0, 1, 2\} but the model has 1 "
                       r"class .*--set classes=3 \(or --binary"):
        SegmentationFolder(folder, None)
    with pytest.raises(DataError, match=r"label values \{0, 1, 2\} but the model has 2 classes "
                       r"\(values 0..1\); add --set classes=3"):
        SegmentationFolder(folder, None, classes=2)
    with pytest.raises(DataError, match="no split `holdout`"):
        SegmentationFolder(folder, "holdout")


def test_metrics_by_hand():
    p = torch.tensor([[1, 1, 0], [0, 0, 0]])
    t = torch.tensor([[1, 0, 0], [0, 0, 1]])
    assert dice_iou(p, t) == pytest.approx((2 / 4, 1 / 3))
    truth = np.zeros((8, 8), int)
    truth[0:3, 0:3] = 1
    truth[0:3, 3:6] = 2          # touching, told apart by value
    truth[6:8, 6:8] = 3
    pred = np.zeros((8, 8), int)
    pred[0:3, 0:3] = 1           # matches object 1 exactly
    pred[5:8, 5:8] = 1           # IoU 4/9 with object 3: no match
    gt = instances(truth, by_value=True)
    assert gt.max() == 3 and instances(truth > 0).max() == 2
    assert object_f1(instances(pred), gt) == pytest.approx(2 * 1 / (2 + 3))


def test_training_lowers_the_loss_and_writes_everything(folder, tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=6, batch=4, crop=32, samples_per_image=4, lr=3e-3, binary=True,
                      overrides={"base": 4, "depth": 2})
    best = train(str(ROOT / "specs" / "unet.yaml"), folder, out, cfg, log=lambda s: None)
    log = json.loads((out / "log.json").read_text())
    assert log[-1]["loss"] < log[0]["loss"]
    assert best["dice"] > 0
    for name in ("best.pt", "last.pt", "log.csv", "curves.png", "predictions.png"):
        assert (out / name).stat().st_size > 0
    cfg.epochs = 7
    train(str(ROOT / "specs" / "unet.yaml"), folder, out, cfg, resume=True, log=lambda s: None)
    assert len(json.loads((out / "log.json").read_text())) == 7


def test_evaluate_and_compare_cli(folder, tmp_path, capsys):
    args = ["--data", str(folder), "--epochs", "1", "--batch", "4", "--crop", "32", "--binary",
            "--set", "base=4", "--set", "depth=2", "--set", "ds=true"]
    out = tmp_path / "cmp"
    assert main(["compare", "unet", "unet_pp", *args, "--out", str(out), "--seeds", "0", "1"]) == 0
    table = (out / "compare.md").read_text()
    assert "| unet |" in table and "| unet_pp |" in table and "±" in table
    capsys.readouterr()
    assert main(["evaluate", str(out / "unet_pp" / "seed0" / "best.pt"), "--data",
                 str(folder), "--binary", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"dice", "iou", "object_f1"} <= set(result["mean"])
    assert [lv["head"] for lv in result["pruning_levels"]] == ["X[0,1]", "X[0,2]"]
    assert result["pruning_levels"][0]["params"] < result["pruning_levels"][1]["params"]


def test_channel_mismatch_is_a_clear_error(folder, tmp_path, capsys):
    assert main(["train", "unet", "--data", str(folder), "--set", "in_channels=3", "--binary",
                 "--epochs", "1", "--out", str(tmp_path / "x")]) == 2
    assert "add --set in_channels=1" in capsys.readouterr().err


def test_torchrun_two_cpu_processes(folder, tmp_path):
    out = tmp_path / "ddp"
    # --standalone: the rendezvous store takes a free port (no clash with another run)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "skipgraph.cli", "train", "unet", "--data",
           str(folder), "--binary", "--set", "base=4", "--set", "depth=2", "--epochs", "1",
           "--batch", "2", "--crop", "32", "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "best.pt").exists() and len(json.loads((out / "log.json").read_text())) == 1
    # every rank reports rank 0's best (not "epoch None, val Dice -1.0000"); the two processes
    # share one stdout, so their lines are found wherever they stand
    best = re.findall(r"best: epoch \S+, val Dice \S+, IoU [0-9.]+", proc.stdout)
    assert len(best) == 2 and best[0] == best[1] and "epoch 1," in best[0], proc.stdout


def test_train_with_activation_checkpointing(folder, tmp_path, capsys):
    args = ["--data", str(folder), "--epochs", "1", "--steps", "2", "--batch", "2", "--crop",
            "32", "--binary", "--set", "base=2", "--set", "depth=2"]
    assert main(["train", "unet_pp", *args, "--checkpoint", "X", "--out",
                 str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "best.pt").exists()
    assert main(["train", "unet_pp", *args, "--checkpoint", "Y", "--out",
                 str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "recompute: `Y` is neither a node family nor a loop" in err and "Traceback" not in err


def test_validate_every_k_epochs(folder, tmp_path, capsys):
    args = ["--data", str(folder), "--epochs", "3", "--steps", "1", "--batch", "2", "--crop",
            "32", "--binary", "--set", "base=2", "--set", "depth=2"]
    out = tmp_path / "v"
    assert main(["train", "unet", *args, "--val-every", "2", "--out", str(out)]) == 0
    log = json.loads((out / "log.json").read_text())
    # epoch 2 (every 2nd) and epoch 3 (the last) are validated, epoch 1 is not
    assert [row["val_dice"] is not None for row in log] == [False, True, True]
    assert (out / "curves.png").stat().st_size > 0 and (out / "best.pt").exists()
    captured = capsys.readouterr()
    assert "not validated" in captured.out + captured.err
    with pytest.raises(SystemExit):
        main(["train", "unet", *args, "--val-every", "0", "--out", str(out)])
    assert "not a whole number >= 1" in capsys.readouterr().err

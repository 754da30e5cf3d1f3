"""NIfTI volumes in the MSD / nnU-Net layout, label maps, patch sampling, sliding-window
evaluation per class and multi-class 2D folders, on tiny synthetic data (the real
msd_hippocampus runs are in docs/results.md)."""
import json
import math
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("monai")
nib = pytest.importorskip("nibabel")

from skipgraph.cli import main  # noqa: E402
from skipgraph.train import DataError, TrainConfig, train  # noqa: E402
from skipgraph.train.volumes import VolumeFolder  # noqa: E402
from skipgraph.train.windows import evaluate_cases, summarize  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.test_train import make_folder  # noqa: E402

SHAPES = [(14, 18, 12), (12, 16, 12), (16, 20, 14), (13, 17, 11), (12, 16, 12), (15, 16, 13)]


def make_volumes(root, label_dtype=np.uint8, labels=(1, 2), nnunet_names=False):
    """Two touching boxes per case (values ``labels``), brighter than the background; the
    intensity scale differs by orders of magnitude between cases, as in MSD Task04."""
    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    names = []
    for k, shape in enumerate(SHAPES):
        label = np.zeros(shape, label_dtype)
        x, y, z = (rng.integers(2, s - 8) for s in shape)
        label[x:x + 3, y:y + 5, z:z + 4] = labels[0]
        label[x + 3:x + 6, y:y + 5, z:z + 4] = labels[1]
        image = (rng.normal(1, 0.3, shape) + 2.0 * (label > 0) + 1.0 * (label == labels[1]))
        image = (image * 10 ** k).astype(np.float32)
        name = f"case_{k:03d}"
        image_file = f"{name}_0000.nii.gz" if nnunet_names else f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(root / "imagesTr" / image_file))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / f"{name}.nii.gz"))
        names.append(name)
    (root / "split.json").write_text(json.dumps(
        {"train": names[:4], "val": names[4:5], "test": names[5:]}))
    return root


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    return make_volumes(tmp_path_factory.mktemp("vol"))


def test_volume_folder_reads_normalises_and_pads(volumes, tmp_path):
    ds = VolumeFolder(volumes, "train", classes=3, patch=(16, 20, 16), seed=0)
    assert ds.names == ["case_000", "case_001", "case_002", "case_003"] and ds.dims == 3
    for image in ds.images:  # z-scored per volume, whatever the scale
        assert abs(float(image.mean())) < 1e-4 and float(image.std()) == pytest.approx(1, 1e-3)
    x, y = ds[1]  # case 1 (12x16x12) is smaller than the patch: padded
    assert x.shape == (1, 16, 20, 16) and y.shape == (3, 16, 20, 16)
    assert (y.sum(0) == 1).all() and y[1:].sum() > 0
    # default patch: the largest case rounded up to the network's stride
    assert VolumeFolder(volumes, None, classes=3, stride=4).patch == (16, 20, 16)
    # float32 label files (two MSD cases) and nnU-Net's NAME_0000 image names
    other = make_volumes(tmp_path / "f", label_dtype=np.float32, nnunet_names=True)
    assert VolumeFolder(other, "train", classes=3).labels[0].dtype == np.int16  # IGNORE = -1


def test_foreground_oversampling(volumes):
    ds = VolumeFolder(volumes, "train", classes=3, patch=(8, 8, 8), augment=False,
                      pos_fraction=1.0)
    assert all(ds[k][1][1:].sum() > 0 for k in range(8))  # every patch centred on foreground


def test_label_values_are_checked_against_the_classes(volumes, tmp_path, capsys):
    with pytest.raises(DataError, match=r"case_000.nii.gz: label values \{0, 1, 2\} but the "
                       r"model has 2 classes \(values 0..1\); add --set classes=3"):
        VolumeFolder(volumes, "train", classes=2)
    with pytest.raises(DataError, match=r"1 class \(0/1 masks\); add --set classes=3"):
        VolumeFolder(volumes, "train", classes=1)
    assert VolumeFolder(volumes, "train", classes=1, binary=True).labels[0].max() == 1
    odd = make_volumes(tmp_path / "odd", label_dtype=np.float32, labels=(1, 1.5))
    with pytest.raises(DataError, match=r"label values \{0, 1, 1.5\} are not all whole"):
        VolumeFolder(odd, "train", classes=3)
    # the CLI: exit 2 with the message, no training
    out = tmp_path / "run"
    assert main(["train", "unet", "--data", str(volumes), "--set", "dims=3", "--set", "depth=2",
                 "--set", "classes=2", "--out", str(out)]) == 2
    assert "but the model has 2 classes" in capsys.readouterr().err
    assert not (out / "last.pt").exists()
    assert main(["train", "unet", "--data", str(volumes), "--set", "classes=3",
                 "--out", str(out)]) == 2
    assert "the data is 3D but unet is 2D" in capsys.readouterr().err


def test_missing_files_are_named(volumes, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(volumes, bad)
    (bad / "imagesTr" / "case_002.nii.gz").unlink()
    with pytest.raises(DataError, match="case_002 has no image in imagesTr/"):
        VolumeFolder(bad, "train", classes=3)
    (bad / "labelsTr" / "case_001.nii.gz").write_bytes(b"not nifti")
    with pytest.raises(DataError, match="case_001.nii.gz: cannot read"):
        VolumeFolder(bad, "train", classes=3)


def test_train_and_evaluate_3d_label_maps(volumes, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--data", str(volumes), "--set", "dims=3", "--set", "depth=2", "--set", "base=4",
            "--set", "classes=3", "--set", "norm=instance", "--epochs", "2", "--batch", "2",
            "--patch", "12x16x12", "--lr", "3e-3", "--channels-last", "--val-every", "2"]
    assert main(["train", "unet_pp", *args, "--set", "ds=true", "--out", str(out)]) == 0
    log = json.loads((out / "log.json").read_text())
    assert {"dice_1", "dice_2", "samples"} <= set(log[-1]) and "dice_1" not in log[0]
    assert "dice_2" in (out / "log.csv").read_text().splitlines()[0]  # columns of every row
    for name in ("best.pt", "curves.png", "predictions.png"):
        assert (out / name).stat().st_size > 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.pt"), "--data", str(volumes), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["patch"] == [12, 16, 12]  # the validation window (largest val case) is kept
    assert set(result["classes"]) == {"1", "2"} and len(result["cases"]) == 1
    assert {"dice", "dice_sd", "hd95", "hd95_sd", "hd95_inf"} <= set(result["classes"]["1"])
    assert main(["evaluate", str(out / "best.pt"), "--data", str(volumes)]) == 0
    assert "| 1 |" in capsys.readouterr().out


def test_sliding_windows_cover_a_case_larger_than_the_window(volumes):
    import skipgraph
    model = skipgraph.build(SPECS / "unet.yaml", seed=0, dims=3, depth=2, base=2, classes=3)
    data = VolumeFolder(volumes, "test", classes=3, augment=False)
    whole = evaluate_cases(model, data, roi=(16, 16, 16), hd95=False)
    windows = evaluate_cases(model, data, roi=(8, 8, 8), hd95=False)
    assert len(whole["cases"]) == len(windows["cases"]) == 1
    assert 0 <= windows["mean"]["dice"] <= 1


def test_metrics_per_class_by_hand():
    """Dice per class and case, HD95 inf when the prediction misses a class, summary over
    cases (sd over the finite HD95 values)."""
    rows = [{"case": "a", "seconds": 1.0, "dice": {"1": 1.0, "2": 0.5},
             "iou": {"1": 1.0, "2": 1 / 3}, "hd95": {"1": 0.0, "2": 2.0}},
            {"case": "b", "seconds": 3.0, "dice": {"1": 0.5, "2": 0.0},
             "iou": {"1": 1 / 3, "2": 0.0}, "hd95": {"1": 4.0, "2": math.inf}}]
    s = summarize(rows)
    assert s["classes"]["1"]["dice"] == 0.75 and s["classes"]["2"]["dice"] == 0.25
    assert s["classes"]["1"]["dice_sd"] == pytest.approx(math.sqrt(0.125))
    assert s["classes"]["2"]["hd95"] == 2.0 and s["classes"]["2"]["hd95_inf"] == 1
    assert s["mean"]["dice"] == 0.5 and s["mean"]["seconds"] == 2.0


def test_evaluate_cases_against_a_known_prediction(volumes):
    """A model that outputs the truth scores Dice 1 and HD95 0 for every class."""
    import skipgraph
    model = skipgraph.build(SPECS / "unet.yaml", seed=0, dims=3, depth=2, base=2, classes=3)
    data = VolumeFolder(volumes, "test", classes=3, augment=False)
    truth = torch.from_numpy(data.labels[0].astype(np.int64))
    perfect = torch.stack([truth == c for c in range(3)]).float()[None] * 20 - 10
    # the truth as logits, zero-padded to the padded input (the padding is cropped away)
    model.forward = lambda x: torch.nn.functional.pad(perfect, [
        p for d in (4, 3, 2) for p in (0, x.shape[d] - perfect.shape[d])])
    result = evaluate_cases(model, data, roi=None)
    for c in ("1", "2"):
        assert result["classes"][c]["dice"] == pytest.approx(1.0)
        assert result["classes"][c]["hd95"] == pytest.approx(0.0)


def test_2d_folder_with_three_classes(tmp_path, capsys):
    """Masks with values 0/1/2 train a softmax model with 3 classes; evaluate reports each
    class, and compare tabulates them."""
    folder = make_folder(tmp_path / "data")
    cfg = TrainConfig(epochs=2, batch=4, crop=32, lr=3e-3,
                      overrides={"base": 4, "depth": 2, "classes": 3})
    out = tmp_path / "run"
    best = train(str(SPECS / "unet.yaml"), folder, out, cfg, log=lambda s: None)
    assert 0 <= best["dice"] <= 1 and "dice_2" in best
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.pt"), "--data", str(folder), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["classes"]) == {"1", "2"}
    cmp = tmp_path / "cmp"
    assert main(["compare", "unet", "--data", str(folder), "--set", "classes=3", "--set",
                 "base=4", "--set", "depth=2", "--epochs", "1", "--crop", "32", "--out",
                 str(cmp)]) == 0
    table = (cmp / "compare.md").read_text()
    assert "Dice 1" in table and "Dice 2" in table and "HD95 2" in table


def test_missing_medical_extra_is_named(volumes, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nibabel", None)
    assert main(["train", "unet", "--data", str(volumes), "--set", "dims=3", "--set",
                 "classes=3", "--out", str(tmp_path / "x")]) == 2
    assert "skipgraph[medical]" in capsys.readouterr().err


def _centre(mask: torch.Tensor, axis: int) -> float:
    idx = torch.nonzero(mask)[:, axis].float()
    return float(idx.mean())


def test_flip_axes_keep_the_sides_of_an_axis(volumes):
    """Class 1 lies before class 2 along axis 0 in every case: mirroring only axes 1 and 2
    keeps that order in every patch; mirroring every axis swaps it in some."""
    def orders(flip_axes):
        ds = VolumeFolder(volumes, "train", classes=3, patch=(16, 20, 16), seed=1,
                          flip_axes=flip_axes)
        return {_centre(y[1], 0) < _centre(y[2], 0) for y in (ds[k][1] for k in range(24))}
    assert orders((1, 2)) == {True}
    assert orders(None) == {True, False}
    with pytest.raises(DataError, match="3 spatial axes"):
        VolumeFolder(volumes, "train", classes=3, flip_axes=(3,))


def test_flip_axes_option_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "unet", "--data", str(tmp_path), "--flip-axes", "0,a"])
    assert exc.value.code == 2 and "--flip-axes '0,a'" in capsys.readouterr().err


def test_poly_schedule_follows_nnunet_and_resumes():
    from skipgraph.train.loop import lr_scheduler
    cfg = TrainConfig(epochs=4, lr=0.1, lr_schedule="poly")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = lr_scheduler(opt, cfg, steps_per_epoch=5)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * (1 - 10 / 20) ** 0.9)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    lr_scheduler(opt, cfg, steps_per_epoch=5, start_epoch=2)  # resumed after 10 steps
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * (1 - 10 / 20) ** 0.9)
    assert lr_scheduler(opt, TrainConfig(), 5) is None
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")

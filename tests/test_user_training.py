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

"""nnU-Net v2's real pipeline with a skipgraph UNet++ (CPU, a few minutes): MSD hippocampus
cases in nnU-Net's raw layout, nnU-Net's planning and preprocessing, ``skipgraph nnunet plans``,
training through nnU-Net's entry point, ``nnUNetv2_predict`` on two unseen cases. Nothing is
downloaded; the data is ``<repo>/../shared/data/msd_hippocampus`` as in CI (``$SKIPGRAPH_DATA``
names another folder holding ``msd_hippocampus``)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DATA = Path(os.environ.get("SKIPGRAPH_DATA") or ROOT.parent / "shared" / "data") / "msd_hippocampus"
TRAINER = "nnUNetTrainerSkipGraph_1epochs_2iters_nomirror"

pytestmark = pytest.mark.slow


def _run(args: list[str], env: dict, timeout: int = 600) -> str:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)
    assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


def test_train_and_predict_a_skipgraph_unet_pp_with_nnunet(tmp_path):
    pytest.importorskip("nnunetv2")
    nib = pytest.importorskip("nibabel")
    if not (DATA / "split.json").is_file():
        pytest.skip(f"MSD hippocampus not found at {DATA} (CI clones shared/ beside the repo)")
    from skipgraph.integrations.nnunet.dataset import msd_to_raw

    split = json.loads((DATA / "split.json").read_text())
    train, test = split["train"][:8], split["test"][:2]
    raw, pre, res = tmp_path / "raw", tmp_path / "pre", tmp_path / "res"
    msd_to_raw(DATA, raw, 4, "Hippocampus", {"background": 0, "Anterior": 1, "Posterior": 2},
               train, test)
    env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(pre),
           "nnUNet_results": str(res), "nnUNet_n_proc_DA": "0", "nnUNet_compile": "f",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    bin_dir = Path(sys.executable).parent
    # planning sets torch's thread count from nnUNet_n_proc_DA, which must be positive there
    _run([str(bin_dir / "nnUNetv2_plan_and_preprocess"), "-d", "4", "-c", "3d_fullres",
          "-np", "1", "--verify_dataset_integrity"], {**env, "nnUNet_n_proc_DA": "1"})
    dataset = pre / "Dataset004_Hippocampus"
    (dataset / "splits_final.json").write_text(json.dumps([{"train": train[:6],
                                                            "val": train[6:]}]))
    sg = [sys.executable, "-m", "skipgraph.cli", "nnunet"]
    out = _run(sg + ["plans", str(dataset / "nnUNetPlans.json"), "--spec", "unet_pp",
                     "--set", "base=4", "--name", "nnUNetPlansSG", "-c", "3d_fullres"], env)
    assert "3d_fullres: dims=3, depth=3, base=4, ds=true" in out
    _run(sg + ["train", "4", "3d_fullres", "0", "-p", "nnUNetPlansSG", "-tr", TRAINER,
               "-device", "cpu"], env)
    model = res / "Dataset004_Hippocampus" / f"{TRAINER}__nnUNetPlansSG__3d_fullres"
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    summary = json.loads((model / "fold_0" / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}  # Dice of both classes on the 2 val cases
    import torch
    ckpt = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False,
                      map_location="cpu")
    assert ckpt["trainer_name"] == TRAINER
    assert {"net.head_X0_1.weight", "net.head_X0_3.weight"} <= set(ckpt["network_weights"])

    # prediction: nnUNetv2_predict's entry point (skipgraph's trainer names resolved)
    _run(sg + ["predict", "-i", str(raw / "Dataset004_Hippocampus" / "imagesTs"),
               "-o", str(tmp_path / "pred"), "-d", "4", "-c", "3d_fullres", "-f", "0",
               "-p", "nnUNetPlansSG", "-tr", TRAINER, "-device", "cpu", "-npp", "1",
               "-nps", "1"], env)
    for case in test:
        pred = nib.load(tmp_path / "pred" / f"{case}.nii.gz")
        image = nib.load(DATA / "imagesTr" / f"{case}.nii.gz")
        assert pred.shape == image.shape
        assert set(map(int, pred.get_fdata().ravel())) <= {0, 1, 2}

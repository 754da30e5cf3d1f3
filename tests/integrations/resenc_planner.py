"""Run one of nnU-Net's ResEnc planners on a synthetic dataset fingerprint and print its plans'
configurations as JSON (``python tests/integrations/resenc_planner.py PLANNER SHAPE SPACING``,
e.g. ``nnUNetPlannerResEncL 256x256x256 1x1x1``). nnU-Net reads its folders from the
environment when imported, so tests run this in a subprocess with ``nnUNet_raw`` /
``nnUNet_preprocessed`` pointing into a temporary folder; the planner needs a dataset.json, one
example image (its reader) and the fingerprint: every case ``SHAPE`` voxels at ``SPACING`` mm.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path


def _dataset(root: Path, shape: list[int], spacing: list[float], cases: int = 100) -> None:
    import nibabel
    import numpy as np
    name = "Dataset990_Synthetic"
    raw, pre = root / "raw" / name, root / "pre" / name
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    pre.mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1},
        "numTraining": 1, "file_ending": ".nii.gz"}))
    for path, dtype in ((raw / "imagesTr" / "c0_0000.nii.gz", np.float32),
                        (raw / "labelsTr" / "c0.nii.gz", np.uint8)):
        nibabel.save(nibabel.Nifti1Image(np.zeros((4, 4, 4), dtype), np.eye(4)), str(path))
    intensities = {"mean": 0.0, "std": 1.0, "percentile_00_5": -1.0, "percentile_99_5": 1.0,
                   "min": -2.0, "max": 2.0, "median": 0.0}
    (pre / "dataset_fingerprint.json").write_text(json.dumps({
        "spacings": [spacing] * cases, "shapes_after_crop": [shape] * cases,
        "foreground_intensity_properties_per_channel": {"0": intensities},
        "median_relative_size_after_cropping": 1.0}))


def main(planner: str, shape: str, spacing: str) -> None:
    root = Path(tempfile.mkdtemp())
    _dataset(root, [int(v) for v in shape.split("x")], [float(v) for v in spacing.split("x")])
    os.environ.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"),
                      nnUNet_results=str(root / "results"))
    from nnunetv2.experiment_planning.experiment_planners.residual_unets import (
        residual_encoder_unet_planners as planners)
    plans = getattr(planners, planner)(990).plan_experiment()
    print(json.dumps(plans["configurations"]))


if __name__ == "__main__":
    main(*sys.argv[1:4])

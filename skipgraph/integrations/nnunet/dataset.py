"""A Medical Segmentation Decathlon folder (``imagesTr/NAME.nii.gz`` + ``labelsTr/NAME.nii.gz``)
in nnU-Net v2's raw layout (``DatasetXXX_Name/imagesTr/NAME_0000.nii.gz``, ``labelsTr``,
``imagesTs``, ``dataset.json``), for tests and the recipe in docs/nnunet.md."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable

__all__ = ["msd_to_raw"]


def msd_to_raw(src: str | Path, raw_root: str | Path, dataset_id: int, name: str,
               labels: dict[str, int], train: Iterable[str], test: Iterable[str] = (),
               channel: str = "MRI") -> Path:
    """Copy the ``train`` cases (images + labels) and ``test`` cases (images) of the one-channel
    MSD folder ``src`` into ``raw_root/DatasetXXX_name``; labels are re-saved as uint8 (nnU-Net
    wants integer label maps; MSD stores a few as float32). Returns the dataset folder.

    Raises FileNotFoundError naming the first missing image or label, and DataError (a
    ValueError) naming the first label whose values are not the ``labels`` (nnU-Net's
    ``ignore`` entry included), non-finite or fractional, or whose affine differs from its
    image's (the rule every skipgraph reader applies: :mod:`skipgraph.train.labels`)."""
    import nibabel as nib
    import numpy as np

    from ...train.labels import LabelOptions, label_table
    from ...train.volumes import Volume

    src = Path(src)
    out = Path(raw_root) / f"Dataset{dataset_id:03d}_{name}"
    train, test = list(train), list(test)
    for case in train + test:
        for kind in ("imagesTr",) + (("labelsTr",) if case in train else ()):
            if not (src / kind / f"{case}.nii.gz").is_file():
                raise FileNotFoundError(f"{src / kind / f'{case}.nii.gz'} is missing")
    ignore = labels.get("ignore")
    classes = len([k for k in labels if k != "ignore"])
    for case in train:  # every label checked before anything is written
        path = src / "labelsTr" / f"{case}.nii.gz"
        label = Volume(path)
        Volume(src / "imagesTr" / f"{case}.nii.gz").check_same_grid(label)
        label_table({str(path): set(np.unique(label.data).tolist())}, classes,
                    LabelOptions(ignore_index=ignore), source=f"labels {dict(labels)}")
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for case in train:
        shutil.copyfile(src / "imagesTr" / f"{case}.nii.gz", out / "imagesTr" / f"{case}_0000.nii.gz")
        lab = nib.load(src / "labelsTr" / f"{case}.nii.gz")
        data = np.asarray(lab.dataobj)
        img = nib.Nifti1Image(data.astype(np.uint8), lab.affine, lab.header)
        img.set_data_dtype(np.uint8)
        nib.save(img, out / "labelsTr" / f"{case}.nii.gz")
    for case in test:
        shutil.copyfile(src / "imagesTr" / f"{case}.nii.gz", out / "imagesTs" / f"{case}_0000.nii.gz")
    (out / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": channel}, "labels": labels, "numTraining": len(train),
        "file_ending": ".nii.gz"}, indent=1))
    return out


def msd_labels(src: str | Path, given: Iterable[str] = ()) -> dict[str, int]:
    """The label names of an MSD folder: ``NAME=VALUE`` items when given, else its
    ``dataset.json``'s ``labels`` (MSD writes ``{"0": "background", ...}``).

    Raises DataError naming the file or the item when neither gives a mapping."""
    from ...train.errors import DataError
    if given:
        out = {}
        for item in given:
            name, sep, value = item.partition("=")
            if not sep or not name or not value.strip().lstrip("-").isdigit():
                raise DataError(f"--labels {item!r}: write NAME=VALUE, e.g. background=0")
            out[name] = int(value)
        return out
    path = Path(src) / "dataset.json"
    if not path.is_file():
        raise DataError(f"{src} has no dataset.json to read the label names from: give them "
                        "with --labels, e.g. --labels background=0 Anterior=1 Posterior=2")
    labels = json.loads(path.read_text()).get("labels")
    if not isinstance(labels, dict):
        raise DataError(f"{path} has no `labels` mapping: give them with --labels NAME=VALUE")
    return {str(v): int(k) for k, v in labels.items()}


def msd_split(src: str | Path, split: str | Path | None = None) -> tuple[list[str], list[str]]:
    """(train, test) case names: ``split.json``'s ``train`` + ``val`` and ``test`` (the given
    file, else the folder's own), or every case of ``imagesTr`` with no test cases."""
    path = Path(split) if split else Path(src) / "split.json"
    if path.is_file():
        from ...train.split import check_no_leak
        data = json.loads(path.read_text())
        # train + val both train nnU-Net here: neither may share a case with test
        check_no_leak(path, {"train": list(data.get("train", [])) + list(data.get("val", [])),
                             "test": data.get("test", [])})
        return list(data.get("train", [])) + list(data.get("val", [])), list(data.get("test", []))
    if split:
        raise FileNotFoundError(f"no such split file: {path}")
    cases = sorted(p.name[:-len(".nii.gz")] for p in (Path(src) / "imagesTr").glob("*.nii.gz")
                   if not p.name.startswith("."))
    return cases, []


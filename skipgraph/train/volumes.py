"""A folder in the Medical Segmentation Decathlon / nnU-Net layout: ``imagesTr/NAME.nii.gz``
(one file with the channels as a 4th axis, or nnU-Net's ``NAME_0000.nii.gz``, ``NAME_0001``...)
with ``labelsTr/NAME.nii.gz`` label maps (0 background, 1..K-1 classes) and an optional
``split.json`` of case names. Volumes are read with nibabel, reoriented to the closest canonical
(RAS+) orientation (so a case stored in another orientation gives the same arrays), checked for
matching image/label geometry, and z-scored per volume and channel;
training draws random patches with foreground oversampling, flips, small rotations and
intensity changes from MONAI's transforms (``pip install 'skipgraph[medical]'``).
"""
from __future__ import annotations

import re

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..extras import pip_install
from ..label_rule import one_hot
from .data import ReadOptions, SegmentationFolder, check_flip_axes, normalise
from .errors import DataError
from .labels import label_table
from .split import split_names

__all__ = ["VolumeFolder", "is_volume_folder", "open_folder", "MEDICAL_EXTRA"]

MEDICAL_EXTRA = f"{pip_install('medical')} (MONAI and nibabel)"


def _need_medical() -> None:
    try:
        import monai  # noqa: F401
        import nibabel  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"NIfTI volumes, label maps and sliding windows need MONAI and "
                          f"nibabel ({exc.name} is missing): {MEDICAL_EXTRA}") from None


def is_volume_folder(root: str | Path) -> bool:
    return (Path(root) / "imagesTr").is_dir()


def _case_files(root: Path, name: str) -> list[Path]:
    single = root / "imagesTr" / f"{name}.nii.gz"
    if single.exists():
        return [single]
    return sorted((root / "imagesTr").glob(f"{name}_[0-9][0-9][0-9][0-9].nii.gz"))


def _case_names(root: Path) -> list[str]:
    return sorted(p.name[:-len(".nii.gz")] for p in (root / "labelsTr").glob("*.nii.gz"))


def _image_case_names(root: Path) -> list[str]:
    """The cases ``imagesTr/`` holds: ``NAME.nii.gz``, or ``NAME_0000.nii.gz`` ... (channels)."""
    labels, found = set(_case_names(root)), set()
    for p in (root / "imagesTr").glob("*.nii.gz"):
        name = p.name[:-len(".nii.gz")]
        channel = re.fullmatch(r"(.+)_\d{4}", name)
        found.add(channel[1] if channel and name not in labels else name)
    return sorted(found)


def _check_cases(root: Path) -> None:
    """Refuse an empty ``labelsTr/`` and an image without a label map (as a label map without
    an image), naming the files."""
    labels = _case_names(root)
    if not labels:
        raise DataError(f"no label maps (*.nii.gz) found in {root / 'labelsTr'}/")
    orphans = [n for n in _image_case_names(root) if n not in set(labels)]
    if orphans:
        raise DataError(f"{root}: imagesTr/ case {orphans[0]} has no label map in labelsTr/ "
                        f"({orphans[0]}.nii.gz); move unlabelled cases out of imagesTr/ "
                        "(e.g. to imagesTs/)"
                        + (f" ({len(orphans) - 1} more like it)" if len(orphans) > 1 else ""))


AFFINE_TOLERANCE = 1e-3  # mm: image and label affines may differ by rounding, not more


class Volume:
    """One NIfTI file reoriented to RAS+: ``data`` (*spatial[, C]), ``affine`` (4x4), ``spacing``
    (mm per axis) and ``orientation`` (the file's axis codes before reorienting)."""

    def __init__(self, path: Path):
        import nibabel as nib
        try:
            img = nib.load(str(path))
            self.orientation = "".join(nib.aff2axcodes(img.affine)) if img.ndim >= 3 else ""
            if img.ndim >= 3:  # MONAI's Orientation("RAS") / nnU-Net do the same
                img = nib.as_closest_canonical(img)
            self.data = np.asarray(img.dataobj)
        except Exception as exc:  # nibabel raises several types for broken files
            raise DataError(f"{path}: cannot read the NIfTI file ({exc})") from None
        self.path, self.affine = path, np.asarray(img.affine, dtype=np.float64)
        self.spacing = tuple(float(z) for z in img.header.get_zooms())
        try:  # NIfTI's spatial unit; unknown is read as mm (nibabel's, MONAI's, nnU-Net's)
            unit = img.header.get_xyzt_units()[0]
        except Exception:  # noqa: BLE001 - headers without units (Analyze)
            unit = "unknown"
        self.unit = {"meter": "m", "micron": "µm"}.get(unit, "mm")

    def check_same_grid(self, other: "Volume") -> None:
        """A DataError showing both affines unless ``other`` lies on the same voxel grid."""
        if not np.allclose(self.affine, other.affine, atol=AFFINE_TOLERANCE, rtol=0):
            def shown(v: "Volume") -> str:
                rows = "; ".join(" ".join(f"{x:.4g}" for x in r) for r in v.affine[:3])
                return f"{v.path.name} ({v.orientation or '2D'}): [{rows}]"
            raise DataError(
                f"{other.path}: its affine differs from {self.path}'s by more than "
                f"{AFFINE_TOLERANCE} mm, so the two do not cover the same voxels: "
                f"{shown(self)} vs {shown(other)}; resample the label onto the image "
                "(or fix the header) before training")


def _load(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    v = Volume(path)
    return v.data, v.spacing


class VolumeFolder(Dataset):
    """Cases held in memory: ``images[k]`` (C, *spatial) float32, ``labels[k]`` (*spatial)
    int16 (``IGNORE`` = -1 for the ignore label). Training items are random patches ``(C, *patch)`` with one-hot targets
    ``(K, *patch)`` (``K = 1``: the foreground mask); ``case(k)`` gives a whole case.

    Args:
        root: the folder with ``imagesTr/`` and ``labelsTr/``.
        split: a key of ``split.json`` (``None``: every case).
        classes: the model's output channels K; labels are checked against it.
        patch: training patch size per spatial axis; cases smaller than it are padded.
        augment: random flips on the ``flip_axes``, rotations (up to 15 degrees, p 0.2) and intensity
            scale/shift/noise; ``False`` keeps only the patch sampling.
        pos_fraction: share of patches centred on a foreground voxel (the rest anywhere).
        stride: the network's total stride (an int, or one per axis for an anisotropic
            grid): patch sizes must be multiples of it on each axis.
        flip_axes: spatial axes (0-based, of ``(*spatial)``) mirrored with p 0.5 each;
            ``None``: every axis. Leave out an axis whose two sides mean different labels
            (anterior / posterior hippocampus along the second axis of MSD Task04).
    Raises:
        DataError: a missing, unreadable or mismatched file, or label values the model cannot
            represent.
        ImportError: MONAI or nibabel missing.
    """

    def __init__(self, root: str | Path, split: str | None, classes: int = 1,
                 patch: Sequence[int] | None = None, augment: bool = True,
                 samples_per_image: int = 1, seed: int = 0, pos_fraction: float = 0.5,
                 binary: bool = False, stride: int | Sequence[int] = 1,
                 flip_axes: Sequence[int] | None = None, read: ReadOptions | None = None):
        _need_medical()
        self.root = Path(root)
        if not (self.root / "labelsTr").is_dir():
            raise DataError(f"{self.root}: expected the folders imagesTr/ and labelsTr/")
        read = read or ReadOptions(binary=binary)
        self.notes: list[str] = []  # what reading decided, for the log (each said once)
        _check_cases(self.root)
        self.names = split_names(self.root, split, _case_names(self.root), "labelsTr/",
                                 self.notes)
        self.classes, self.binary = classes, read.binary
        self.images, self.spacings, raw = [], [], []
        reoriented = []
        for name in self.names:
            image, grid = self._read_image(name, read)
            label = self._read_label(name, image.shape[1:], grid)
            self.images.append(image)
            raw.append(label.data)
            self.spacings.append(grid.spacing[:image.ndim - 1])
            self.spacing_unit = grid.unit  # of HD95 and the spacing note
            if grid.orientation and grid.orientation != "RAS":
                reoriented.append(f"{name} ({grid.orientation})")
        paths = [str(self.root / "labelsTr" / f"{n}.nii.gz") for n in self.names]
        table = label_table({p: set(np.unique(a).tolist()) for p, a in zip(paths, raw)},
                            classes, read.labels(self.root))
        self.labels = [table.apply(a) for a in raw]  # int16, IGNORE for the ignore label
        self.ignored = table.ignored
        if table.note:
            self.notes.append(f"note: {table.note}")
        if reoriented:
            self.notes.append(f"note: {len(reoriented)} case(s) reoriented to RAS (e.g. "
                              f"{reoriented[0]}), images and labels alike")
        dims = {im.ndim - 1 for im in self.images}
        if len(dims) > 1 or {im.shape[0] for im in self.images} != {self.channels}:
            raise DataError(f"{self.root}: cases differ in dimensions or channels")
        self.dims = dims.pop()
        self.flip_axes = check_flip_axes(flip_axes, self.dims)
        # default: the largest case, rounded up to the network's stride
        strides = (stride,) * self.dims if isinstance(stride, int) else tuple(stride)
        self.patch = tuple(patch) if patch else tuple(-(-s // f) * f for s, f in
                                                      zip(self.largest_case(), strides))
        shown = "x".join(map(str, self.patch))
        if len(self.patch) != self.dims:
            raise DataError(f"patch {shown} has {len(self.patch)} axes but the volumes have "
                            f"{self.dims}")
        if any(s % f for s, f in zip(self.patch, strides)):
            raise DataError(f"patch {shown} is not a multiple of the network's stride "
                            f"{'x'.join(map(str, strides)) if len(set(strides)) > 1 else stride}"
                            f"{' (per axis)' if len(set(strides)) > 1 else ''}")
        self.augment, self.samples_per_image = augment, samples_per_image
        self.prepare, self.transform = self._transforms(pos_fraction)
        self.transform.set_random_state(seed)
        self._prepared: dict[int, dict[str, Any]] = {}

    @property
    def channels(self) -> int:
        return self.images[0].shape[0]

    def largest_case(self) -> tuple[int, ...]:
        return tuple(int(s) for s in np.max([im.shape[1:] for im in self.images], axis=0))

    def spacing_note(self) -> str:
        """The voxel spacing of the cases (mm), for the log."""
        shown = sorted({"x".join(f"{z:g}" for z in s) for s in self.spacings})
        unit = self.spacing_unit
        return (f"spacing {shown[0]} {unit}" if len(shown) == 1 else
                f"spacing from {shown[0]} to {shown[-1]} {unit} ({len(shown)} kinds)")

    def _read_image(self, name: str, read: ReadOptions) -> tuple[np.ndarray, Volume]:
        files = _case_files(self.root, name)
        if not files:
            raise DataError(f"{self.root}: case {name} has no image in imagesTr/ "
                            f"({name}.nii.gz or {name}_0000.nii.gz)")
        arrays, first = [], None
        for path in files:
            v = Volume(path)
            if first is None:
                first = v
            else:  # nnU-Net's NAME_0001...: every channel on the first one's grid
                first.check_same_grid(v)
            a = v.data.astype(np.float32)
            # MSD stores channels as a 4th axis; nnU-Net one file per channel
            arrays.extend(np.moveaxis(a, -1, 0) if a.ndim == 4 else [a])
        image = normalise(np.stack(arrays), files[0], read.replace_nonfinite, self.notes)
        return image, first

    def _read_label(self, name: str, shape: tuple[int, ...], grid: Volume) -> Volume:
        path = self.root / "labelsTr" / f"{name}.nii.gz"
        label = Volume(path)
        if label.data.shape != shape:
            raise DataError(f"{path}: label shape {label.data.shape} but the image is {shape}")
        grid.check_same_grid(label)
        return label

    def _transforms(self, pos_fraction: float):
        from monai import transforms as T
        keys = ["image", "label"]
        # once per case: pad to the patch, list foreground and background voxels
        prepare = T.Compose([T.SpatialPadd(keys, spatial_size=self.patch, mode="constant"),
                             T.FgBgToIndicesd("label")])
        steps: list[Any] = [
            T.RandCropByPosNegLabeld(keys, label_key="label", spatial_size=self.patch,
                                     pos=pos_fraction, neg=1 - pos_fraction, num_samples=1,
                                     fg_indices_key="label_fg_indices",
                                     bg_indices_key="label_bg_indices"),
        ]
        if self.augment:
            angle = float(np.deg2rad(15))
            steps += [T.RandFlipd(keys, prob=0.5, spatial_axis=a) for a in self.flip_axes]
            steps += [
                T.RandRotated(keys, range_x=angle, range_y=angle if self.dims == 3 else 0.0,
                              range_z=angle if self.dims == 3 else 0.0, prob=0.2,
                              mode=("bilinear", "nearest"), padding_mode="zeros"),
                T.RandScaleIntensityd("image", factors=0.1, prob=0.5),
                T.RandShiftIntensityd("image", offsets=0.1, prob=0.5),
                T.RandGaussianNoised("image", std=0.1, prob=0.15),
            ]
        return prepare, T.Compose(steps)

    def __len__(self) -> int:
        return len(self.names) * self.samples_per_image

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        k %= len(self.names)
        if k not in self._prepared:
            self._prepared[k] = self.prepare({"image": self.images[k],
                                              "label": self.labels[k][None]})
        sample = self.transform(dict(self._prepared[k]))
        sample = sample[0] if isinstance(sample, list) else sample
        image = torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32)
        label = torch.as_tensor(np.asarray(sample["label"])).round().long()
        return image, one_hot(label, self.classes)

    def case(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Case ``k`` whole: image (C, *spatial), label map (*spatial)."""
        return self.images[k], self.labels[k]


def open_folder(root: str | Path, split: str | None, classes: int, *, patch=None,
                crop: int | None = None, augment: bool = False, samples_per_image: int = 1,
                seed: int = 0, binary: bool = False, stride: int | Sequence[int] = 1,
                flip_axes: Sequence[int] | None = None, read: ReadOptions | None = None
                ) -> VolumeFolder | SegmentationFolder:
    """The volume folder (``imagesTr/``) or the 2D image folder (``images/``) at ``root``."""
    read = read or ReadOptions(binary=binary)
    if not Path(root).is_dir():
        raise DataError(f"{root}: the data folder does not exist" if not Path(root).exists()
                        else f"{root} is a file, not a data folder (images/ + masks/, or "
                        "imagesTr/ + labelsTr/)")
    if is_volume_folder(root):
        return VolumeFolder(root, split, classes, patch=patch, augment=augment,
                            samples_per_image=samples_per_image, seed=seed, stride=stride,
                            flip_axes=flip_axes, read=read)
    return SegmentationFolder(root, split, classes=classes, crop=crop, augment=augment,
                              samples_per_image=samples_per_image, seed=seed,
                              flip_axes=flip_axes, read=read)

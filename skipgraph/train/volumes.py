"""A folder in the Medical Segmentation Decathlon / nnU-Net layout: ``imagesTr/NAME.nii.gz``
(one file with the channels as a 4th axis, or nnU-Net's ``NAME_0000.nii.gz``, ``NAME_0001``...)
with ``labelsTr/NAME.nii.gz`` label maps (0 background, 1..K-1 classes) and an optional
``split.json`` of case names. Volumes are read with nibabel and z-scored per volume and channel;
training draws random patches with foreground oversampling, flips, small rotations and
intensity changes from MONAI's transforms (``pip install 'skipgraph[medical]'``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..extras import pip_install
from .data import DataError, SegmentationFolder, check_flip_axes, split_names
from .labels import check_labels, one_hot

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


def _load(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    import nibabel as nib
    try:
        img = nib.load(str(path))
        return np.asarray(img.dataobj), tuple(float(z) for z in img.header.get_zooms())
    except Exception as exc:  # nibabel raises several types for broken files
        raise DataError(f"{path}: cannot read the NIfTI file ({exc})") from None


class VolumeFolder(Dataset):
    """Cases held in memory: ``images[k]`` (C, *spatial) float32, ``labels[k]`` (*spatial)
    uint8. Training items are random patches ``(C, *patch)`` with one-hot targets
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
                 flip_axes: Sequence[int] | None = None):
        _need_medical()
        self.root = Path(root)
        if not (self.root / "labelsTr").is_dir():
            raise DataError(f"{self.root}: expected the folders imagesTr/ and labelsTr/")
        self.names = split_names(self.root, split, _case_names(self.root), "labelsTr/")
        self.classes, self.binary = classes, binary
        self.images, self.labels, self.spacings = [], [], []
        for name in self.names:
            image, spacing = self._read_image(name)
            label = self._read_label(name, image.shape[1:])
            self.images.append(image)
            self.labels.append(label)
            self.spacings.append(spacing[:image.ndim - 1])
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

    def _read_image(self, name: str) -> tuple[np.ndarray, tuple[float, ...]]:
        files = _case_files(self.root, name)
        if not files:
            raise DataError(f"{self.root}: case {name} has no image in imagesTr/ "
                            f"({name}.nii.gz or {name}_0000.nii.gz)")
        arrays, spacing = [], ()
        for path in files:
            a, spacing = _load(path)
            a = a.astype(np.float32)
            # MSD stores channels as a 4th axis; nnU-Net one file per channel
            arrays.extend(np.moveaxis(a, -1, 0) if a.ndim == 4 else [a])
        image = np.stack(arrays)
        mean = image.mean(axis=tuple(range(1, image.ndim)), keepdims=True)
        std = image.std(axis=tuple(range(1, image.ndim)), keepdims=True) + 1e-6
        return (image - mean) / std, spacing

    def _read_label(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        path = self.root / "labelsTr" / f"{name}.nii.gz"
        label, _ = _load(path)
        if label.shape != shape:
            raise DataError(f"{path}: label shape {label.shape} but the image is {shape}")
        if self.binary:
            return (label > 0).astype(np.uint8)
        check_labels(np.unique(label).tolist(), self.classes, str(path))
        return label.astype(np.uint8)  # two MSD label files are float32

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
                flip_axes: Sequence[int] | None = None) -> VolumeFolder | SegmentationFolder:
    """The volume folder (``imagesTr/``) or the 2D image folder (``images/``) at ``root``."""
    if is_volume_folder(root):
        return VolumeFolder(root, split, classes, patch=patch, augment=augment,
                            samples_per_image=samples_per_image, seed=seed, binary=binary,
                            stride=stride, flip_axes=flip_axes)
    return SegmentationFolder(root, split, classes=classes, crop=crop, augment=augment,
                              samples_per_image=samples_per_image, seed=seed, binary=binary,
                              flip_axes=flip_axes)

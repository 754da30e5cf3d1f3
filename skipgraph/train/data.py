"""A folder of ``images/`` + ``masks/`` (matching names; PNG/TIFF, 8/16-bit, gray or RGB) with an
optional ``split.json``; per-image normalisation, random crops, flips and 90-degree rotations.
Files are read with Pillow; a bad or unmatched file is a :class:`DataError` naming it."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError
from .labels import check_labels, one_hot

__all__ = ["DataError", "SegmentationFolder", "read_image", "read_mask", "list_split"]

_EXTS = (".png", ".tif", ".tiff")


def _read(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            return np.array(im)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None


def read_image(path: Path) -> np.ndarray:
    """(C, H, W) float32, each channel normalised to zero mean and unit variance."""
    a = _read(path).astype(np.float32)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3:
        a = a[..., :3].transpose(2, 0, 1)  # drop alpha
    else:
        raise DataError(f"{path}: expected a 2D gray or RGB image, got shape {a.shape}")
    mean = a.mean(axis=(1, 2), keepdims=True)
    std = a.std(axis=(1, 2), keepdims=True) + 1e-6
    return (a - mean) / std


def read_mask(path: Path, classes: int, binary: bool = False) -> np.ndarray:
    """(classes, H, W) float32 one-hot of the label values (one class: the 0/1 mask);
    ``binary``: foreground is any value > 0 (instance-coloured masks). Values the classes cannot
    represent are a DataError."""
    m = _read(path)
    if m.ndim == 3:
        m = m[..., 0]
    if binary:
        m = m > 0
    check_labels(np.unique(m).tolist(), classes, str(path))
    return one_hot(torch.from_numpy(m.astype(np.int64))[None], classes).numpy()


def _files(folder: Path) -> dict[str, str]:
    """stem -> file name of the images in a folder."""
    return {p.stem: p.name for p in sorted(folder.iterdir()) if p.suffix.lower() in _EXTS}


def list_split(root: Path, split: str | None) -> list[tuple[str, str]]:
    """(image file, mask file) pairs of a split (``split.json`` lists names with or without
    extension), or of every image when there is no split file."""
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise DataError(f"{root}: expected the folders images/ and masks/")
    images, masks = _files(root / "images"), _files(root / "masks")
    names = split_names(root, split, list(images), "images/")
    missing = [n for n in names if n not in masks]
    if missing:
        raise DataError(f"{root}: {missing[0]} has no file in masks/"
                        + (f" ({len(missing) - 1} more like it)" if len(missing) > 1 else ""))
    return [(images[n], masks[n]) for n in names]


def split_names(root: Path, split: str | None, available: list[str], where: str) -> list[str]:
    """The names ``split.json`` lists for ``split`` (extensions dropped), or every available
    name when there is no split file; a listed name not available is a DataError."""
    names = available
    if split is not None and (root / "split.json").exists():
        try:
            table = json.loads((root / "split.json").read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{root / 'split.json'}: not valid JSON ({exc})") from None
        if split not in table:
            raise DataError(f"{root / 'split.json'} has no split `{split}` "
                            f"(it has {sorted(table)})")
        names = [n[:-len(".nii.gz")] if n.endswith(".nii.gz") else Path(n).stem
                 for n in table[split]]
    missing = [n for n in names if n not in available]
    if missing:
        raise DataError(f"{root}: {missing[0]} has no file in {where}"
                        + (f" ({len(missing) - 1} more like it)" if len(missing) > 1 else ""))
    if not names:
        raise DataError(f"{root}: no cases in split `{split}`")
    return names


def check_flip_axes(flip_axes: Sequence[int] | None, dims: int) -> tuple[int, ...]:
    """The spatial axes to mirror (``None``: all ``dims`` of them).

    Raises:
        DataError: an axis outside ``0 .. dims - 1`` or a repeated one.
    """
    if flip_axes is None:
        return tuple(range(dims))
    axes = tuple(flip_axes)
    if any(not 0 <= a < dims for a in axes) or len(set(axes)) != len(axes):
        raise DataError(f"flip axes {list(axes)}: the data has {dims} spatial axes, "
                        f"numbered 0..{dims - 1}, each given at most once")
    return axes


class SegmentationFolder(Dataset):
    """Images and masks held in memory; training crops are random, evaluation returns whole
    images (padded by the caller)."""

    def __init__(self, root: str | Path, split: str | None, classes: int = 1,
                 crop: int | None = 128, augment: bool = True, samples_per_image: int = 1,
                 seed: int = 0, binary: bool = False, flip_axes: Sequence[int] | None = None):
        self.root = Path(root)
        self.files = list_split(self.root, split)
        self.names = [Path(image).stem for image, _ in self.files]
        self.images = [read_image(self.root / "images" / image) for image, _ in self.files]
        self.masks = [read_mask(self.root / "masks" / mask, classes, binary)
                      for _, mask in self.files]
        for (image, _), im, m in zip(self.files, self.images, self.masks):
            if im.shape[1:] != m.shape[1:]:
                raise DataError(f"{self.root / 'images' / image}: image {im.shape[1:]} and mask "
                                f"{m.shape[1:]} differ")
            if im.shape[0] != self.images[0].shape[0]:
                raise DataError(f"{self.root / 'images' / image} has {im.shape[0]} channel(s) "
                                f"but {self.files[0][0]} has {self.images[0].shape[0]}: "
                                "convert the images to one kind (gray or RGB)")
        self.crop, self.augment = crop, augment
        # all axes: the 8 flips and 90-degree rotations; fewer: mirror only those
        self.flip_axes = check_flip_axes(flip_axes, 2)
        self.samples_per_image = samples_per_image
        self.rng = random.Random(seed)

    @property
    def channels(self) -> int:
        return self.images[0].shape[0]

    @property
    def spatial_dims(self) -> int:
        return self.images[0].ndim - 1

    def smaller_than_crop(self) -> list[str]:
        """Image files with a side smaller than the crop (their crops are zero-padded)."""
        if not self.crop:
            return []
        return [image for (image, _), im in zip(self.files, self.images)
                if min(im.shape[1:]) < self.crop]

    def __len__(self) -> int:
        return len(self.names) * self.samples_per_image

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        im, m = self.images[k % len(self.names)], self.masks[k % len(self.names)]
        if self.crop:
            # an image smaller than the crop is zero-padded (the mean after normalisation,
            # background in the mask): every crop has the same size, so crops of different
            # images stack into one batch
            c = self.crop
            short = [(0, 0)] + [(0, max(c - s, 0)) for s in im.shape[1:]]
            im, m = np.pad(im, short), np.pad(m, short)
            h, w = im.shape[1:]
            y, x = self.rng.randint(0, h - c), self.rng.randint(0, w - c)
            im, m = im[:, y:y + c, x:x + c], m[:, y:y + c, x:x + c]
        if self.augment and len(self.flip_axes) == 2:
            rot = self.rng.randint(0, 3)
            im, m = np.rot90(im, rot, axes=(1, 2)), np.rot90(m, rot, axes=(1, 2))
            if self.rng.random() < 0.5:
                im, m = im[:, :, ::-1], m[:, :, ::-1]
        elif self.augment:
            for a in self.flip_axes:
                if self.rng.random() < 0.5:
                    im, m = np.flip(im, 1 + a), np.flip(m, 1 + a)
        return torch.from_numpy(im.copy()), torch.from_numpy(m.copy())


def pad_to(x: torch.Tensor, stride: int | Sequence[int]) -> tuple[torch.Tensor, Sequence[int]]:
    """Pad the spatial dims up to a multiple of ``stride`` (one int, or one per axis on an
    anisotropic grid; reflecting the image, or repeating its border where it is smaller than
    the padding); returns the original sizes."""
    sizes = list(x.shape[2:])
    strides = [stride] * len(sizes) if isinstance(stride, int) else list(stride)
    pads = [(-s) % f for s, f in zip(sizes, strides)]
    if any(pads):
        mode = "reflect" if all(p < s for p, s in zip(pads, sizes)) else "replicate"
        x = torch.nn.functional.pad(x, [p for pad in reversed(pads) for p in (0, pad)],
                                    mode=mode)
    return x, sizes

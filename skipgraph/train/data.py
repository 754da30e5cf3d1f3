"""A folder of ``images/`` + ``masks/`` (matching names) with an optional ``split.json``;
per-image normalisation, random crops, flips and 90-degree rotations.

Images: every format Pillow reads (PNG, TIFF, JPEG, BMP, WebP, ...; 8/16-bit, float; gray, RGB,
RGBA, gray+alpha, CMYK; a multi-page TIFF's pages are its channels), all channels kept unless
``drop_alpha``. Masks: lossless formats only (a JPEG mask is refused), gray values, palette
indices, or colours mapped through a palette (:mod:`.labels`). A bad or unmatched file is a
:class:`DataError` naming it."""
from __future__ import annotations

import dataclasses

import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError
from .labels import LabelOptions, colour_code, dataset_ignore_index, label_table
from ..label_rule import one_hot
from .split import split_names

__all__ = ["DataError", "SegmentationFolder", "ReadOptions", "read_image", "read_mask",
           "read_masks", "list_split", "image_extensions", "LOSSY_FORMATS"]

# formats whose compression changes pixel values: a mask in one has blurred label values
LOSSY_FORMATS = ("JPEG", "MPO")


def image_extensions() -> set[str]:
    """The file extensions of every format Pillow can open (lower case, with the dot)."""
    from PIL import Image
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def _pixels(path: Path, mask: bool = False) -> tuple[np.ndarray, tuple[str, ...]]:
    """(H, W) or (H, W, C) array and its band names as Pillow reads them (a multi-page TIFF:
    one band per page; ``mask``: palette images keep their indices, lossy formats refused)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            if mask and im.format in LOSSY_FORMATS:
                raise DataError(
                    f"{path}: a {im.format} mask: {im.format} compression is lossy, so label "
                    "values blur at every object's edge (a 0/255 mask gets values in between); "
                    "save the masks in a lossless format (PNG or TIFF); images may stay JPEG")
            frames = getattr(im, "n_frames", 1)
            if not mask and im.format == "TIFF" and frames > 1:
                return _pages(im, path, frames)
            if not mask and im.mode in ("P", "PA"):  # colours, not indices, are the image
                im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info
                                else "RGB")
            return np.array(im), tuple(im.getbands())
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read the image ({exc})") from None


def _pages(im, path: Path, frames: int) -> tuple[np.ndarray, tuple[str, ...]]:
    pages = []
    for k in range(frames):
        im.seek(k)
        page = np.array(im)
        if pages and page.shape != pages[0].shape:
            raise DataError(f"{path}: page {k} is {page.shape} but page 0 is {pages[0].shape}: "
                            "a multi-page TIFF is read as one channel per page")
        pages.append(page)
    a = np.stack(pages, -1) if pages[0].ndim == 2 else np.concatenate(pages, -1)
    return a, tuple(f"page{k}" for k in range(a.shape[-1]))


def _read(path: Path) -> np.ndarray:
    """A mask file's values as stored (label images for object F1)."""
    return _pixels(path, mask=True)[0]


def read_image(path: Path, drop_alpha: bool = False, replace_nonfinite: bool = False,
               notes: list[str] | None = None) -> np.ndarray:
    """(C, H, W) float32, each channel normalised to zero mean and unit variance; all channels
    kept (RGBA, gray+alpha, RGB+NIR, multi-page TIFF) unless ``drop_alpha`` removes an alpha
    band. NaN/inf pixels are a DataError, or with ``replace_nonfinite`` the channel's mean
    (0 after normalisation; counted in ``notes``)."""
    a, bands = _pixels(path)
    a = a.astype(np.float32)
    if notes is not None and "A" in bands and not drop_alpha:
        notes.append("note: the images have an alpha channel, kept as an input channel "
                     "(--drop-alpha drops it)")
    if a.ndim == 3:
        if drop_alpha and "A" in bands:
            a = a[..., [k for k, b in enumerate(bands) if b != "A"]]
        a = a.transpose(2, 0, 1)
    elif a.ndim == 2:
        a = a[None]
    else:
        raise DataError(f"{path}: expected a 2D image (with channels), got shape {a.shape}")
    return normalise(a, path, replace_nonfinite, notes)


def normalise(a: np.ndarray, path: Path, replace_nonfinite: bool = False,
              notes: list[str] | None = None) -> np.ndarray:
    """(C, *spatial) -> z-scored per channel over the finite values; non-finite values are a
    DataError naming ``path`` and their count, or (``replace_nonfinite``) the channel's mean."""
    finite = np.isfinite(a)
    bad = int(a.size - finite.sum())
    if bad:
        if not replace_nonfinite:
            raise DataError(f"{path}: {bad} NaN/inf value(s) of {a.size}: fix the file, or "
                            "pass --replace-nonfinite to replace them by the channel's mean")
        a = np.where(finite, a, np.nan)
        if notes is not None:
            notes.append(f"{path}: replaced {bad} NaN/inf value(s) by the channel mean "
                         "(--replace-nonfinite)")
    axes = tuple(range(1, a.ndim))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN channel: mean 0
        mean = np.nan_to_num(np.nanmean(a, axis=axes, keepdims=True))
        std = np.nan_to_num(np.nanstd(a, axis=axes, keepdims=True)) + 1e-6
    return np.nan_to_num((a - mean) / std).astype(np.float32)


def mask_values(path: Path) -> tuple[np.ndarray, bool]:
    """A mask file's values (H, W) and whether they are colours (:func:`colour_code`): gray
    values, palette indices, or RGB(A) colours; an RGB mask with equal channels is gray. A
    constant alpha band is dropped; a varying one is a DataError."""
    a, bands = _pixels(path, mask=True)
    if a.ndim == 2:
        return (a.astype(np.uint8) if a.dtype == bool else a), False
    if "A" in bands:
        alpha = a[..., bands.index("A")]
        if alpha.min() != alpha.max():
            raise DataError(f"{path}: the mask's alpha channel varies ({int(alpha.min())}.."
                            f"{int(alpha.max())}): save the label values without transparency")
        a = a[..., [k for k, b in enumerate(bands) if b != "A"]]
    if a.shape[-1] == 1 or (a == a[..., :1]).all():
        return a[..., 0], False
    if a.shape[-1] != 3:
        raise DataError(f"{path}: a {a.shape[-1]}-channel mask: expected gray values, palette "
                        "indices or RGB colours")
    return colour_code(a), True


def read_mask(path: Path, classes: int, binary: bool = False,
              opts: LabelOptions | None = None) -> np.ndarray:
    """(classes, H, W) float32 one-hot of one mask file's label values (one class: the 0/1
    mask; ignored pixels :data:`~.labels.IGNORE`); ``binary``: foreground is any value > 0.
    Values the classes cannot represent are a DataError."""
    opts = opts or LabelOptions(binary=binary)
    values, colour = mask_values(path)
    table = label_table({str(path): set(np.unique(values).tolist())}, classes, opts,
                        {str(path): colour})
    return one_hot(torch.from_numpy(table.apply(values).astype(np.int64))[None], classes).numpy()


def _files(folder: Path) -> dict[str, str]:
    """stem -> file name of the images in a folder (every format Pillow opens)."""
    exts, found = image_extensions(), {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in exts:
            continue
        if p.stem in found:
            raise DataError(f"{folder}: {found[p.stem]} and {p.name} have the same name: "
                            "keep one file per image")
        found[p.stem] = p.name
    return found


def list_split(root: Path, split: str | None, notes: list[str] | None = None
               ) -> list[tuple[str, str]]:
    """(image file, mask file) pairs of a split (``split.json`` lists names with or without
    extension; without the file: a deterministic split, :func:`~.split.split_names`)."""
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise DataError(f"{root}: expected the folders images/ and masks/")
    images, masks = _files(root / "images"), _files(root / "masks")
    if not images:
        raise DataError(f"no images found in {root / 'images'}/ (it holds no file in a format "
                        f"Pillow reads: {', '.join(sorted(e[1:] for e in image_extensions())[:8])}"
                        ", ...)")
    orphans = [n for n in masks if n not in images]
    if orphans:  # as an image without a mask: a file that cannot be a case is a mistake
        raise DataError(f"{root}: masks/{masks[orphans[0]]} has no image in images/ (images/"
                        f"{orphans[0]}.png, .tif or another format)"
                        + (f" ({len(orphans) - 1} more like it)" if len(orphans) > 1 else ""))
    names = split_names(root, split, list(images), "images/", notes)
    missing = [n for n in names if n not in masks]
    if missing:
        raise DataError(f"{root}: {missing[0]} has no file in masks/ (for images/"
                        f"{images[missing[0]]}: masks/{missing[0]}.png, .tif or another "
                        "lossless format)"
                        + (f" ({len(missing) - 1} more like it)" if len(missing) > 1 else ""))
    return [(images[n], masks[n]) for n in names]


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


@dataclass(frozen=True)
class ReadOptions:
    """How a folder's files are read (every reader: 2D images, volumes, ``evaluate``).

    Attributes:
        binary: foreground = any mask value > 0.
        ignore_index: the mask value of unlabelled pixels (default: ``dataset.json``'s
            ``labels: {ignore: N}``, as nnU-Net).
        palette: mask value or colour -> class (:func:`~.labels.parse_palette`).
        drop_alpha: drop an alpha band from RGBA / gray+alpha images.
        replace_nonfinite: replace NaN/inf image values by the channel mean.
        trained: the model is a trained one (``evaluate``): its classes and channels are
            fixed, so a mismatch hints at reading options only, never ``--set``.
    """

    binary: bool = False
    ignore_index: int | None = None
    palette: Mapping[int, int] | None = None
    colour_palette: bool = False
    drop_alpha: bool = False
    replace_nonfinite: bool = False
    trained: bool = False

    def labels(self, root: Path) -> LabelOptions:
        ignore = self.ignore_index if self.ignore_index is not None else \
            dataset_ignore_index(root)
        return LabelOptions(self.binary, ignore, self.palette, self.colour_palette,
                            trained=self.trained)

    def recorded(self) -> dict[str, Any]:
        """The options as a checkpoint records them (plain data; ``trained`` left out)."""
        return {k: (dict(v) if isinstance(v, Mapping) else v)
                for k, v in dataclasses.asdict(self).items() if k != "trained"}


def read_masks(paths: Sequence[Path], classes: int, opts: LabelOptions,
               notes: list[str] | None = None) -> tuple[list[np.ndarray], bool]:
    """One-hot masks (K, H, W) of the files ``paths`` under one label table for the whole
    folder (:func:`~.labels.label_table`), and whether any pixel is ignored."""
    raw = [mask_values(p) for p in paths]
    table = label_table({str(p): set(np.unique(v).tolist()) for p, (v, _) in zip(paths, raw)},
                        classes, opts, {str(p): c for p, (_, c) in zip(paths, raw)})
    if table.note and notes is not None:
        notes.append(f"note: {table.note}")
    masks = [one_hot(torch.from_numpy(table.apply(v).astype(np.int64))[None], classes).numpy()
             for v, _ in raw]
    return masks, table.ignored


class SegmentationFolder(Dataset):
    """Images and masks held in memory; training crops are random, evaluation returns whole
    images (padded by the caller)."""

    def __init__(self, root: str | Path, split: str | None, classes: int = 1,
                 crop: int | None = 128, augment: bool = True, samples_per_image: int = 1,
                 seed: int = 0, binary: bool = False, flip_axes: Sequence[int] | None = None,
                 read: "ReadOptions | None" = None):
        self.root = Path(root)
        read = read or ReadOptions(binary=binary)
        self.notes: list[str] = []  # what reading decided, for the log (each said once)
        self.files = list_split(self.root, split, self.notes)
        self.names = [Path(image).stem for image, _ in self.files]
        self.images = [read_image(self.root / "images" / image, read.drop_alpha,
                                  read.replace_nonfinite, self.notes)
                       for image, _ in self.files]
        self.has_alpha = any("alpha channel" in n for n in self.notes)
        self.notes = list(dict.fromkeys(self.notes))  # each said once
        self.masks, self.ignored = read_masks(
            [self.root / "masks" / mask for _, mask in self.files], classes,
            read.labels(self.root), self.notes)
        for (image, _), im, m in zip(self.files, self.images, self.masks):
            if im.shape[1:] != m.shape[1:]:
                raise DataError(f"{self.root / 'images' / image}: image {im.shape[1:]} and mask "
                                f"{m.shape[1:]} differ")
            if im.shape[0] != self.images[0].shape[0]:
                raise DataError(f"{self.root / 'images' / image} has {im.shape[0]} channel(s) "
                                f"but {self.files[0][0]} has {self.images[0].shape[0]}: "
                                "convert the images to one kind (gray, RGB, RGBA ...), or "
                                "pass --drop-alpha if the difference is an alpha channel")
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

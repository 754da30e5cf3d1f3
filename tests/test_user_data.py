"""What users' data really looks like (issue 25): 0/255 masks, ignore labels, colour masks,
RGBA / NIR / multi-page inputs, NaN pixels, JPEG, NIfTI geometry, folders without split.json.
Each case on tiny data the test writes itself; every reader (2D folders, volumes, the nnU-Net
converter) is held to the same rule."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from skipgraph.train import DataError, SegmentationFolder
from skipgraph.train.data import ReadOptions
from skipgraph.label_rule import IGNORE
from skipgraph.train.labels import parse_palette


def disc_mask(size=24, value=1, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(7, size - 7, 2)
    m = np.zeros((size, size), np.uint8)
    m[(yy - cy) ** 2 + (xx - cx) ** 2 < 20] = value
    return m


def write_folder(root, n=2, size=24, mask=None, image=None, ext=".png", mask_ext=".png",
                 split=True):
    """``n`` images + masks; ``mask(k)`` / ``image(k, m)`` give the arrays (or PIL images)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    names = []
    for k in range(n):
        m = mask(k) if mask else disc_mask(size, seed=k)
        base = np.asarray(m)[..., 0] if np.asarray(m).ndim == 3 else np.asarray(m)
        im = image(k, base) if image else Image.fromarray(
            (40 + 150 * (base > 0) + np.random.default_rng(k).normal(0, 5, base.shape))
            .clip(0, 255).astype(np.uint8))
        (im if isinstance(im, Image.Image) else Image.fromarray(im)).save(
            root / "images" / f"c{k}{ext}")
        (m if isinstance(m, Image.Image) else Image.fromarray(m)).save(
            root / "masks" / f"c{k}{mask_ext}")
        names.append(f"c{k}")
    if split:
        held = names[-1:] if n > 1 else names  # held out from training (one image: all)
        (root / "split.json").write_text(json.dumps({"train": names[:-1] or names, "val": held,
                                                     "test": held}))
    return root


# --- 1. 0/255 masks ----------------------------------------------------------------------

def test_0_255_masks_are_binary_for_one_class_and_said_once(tmp_path):
    data = write_folder(tmp_path / "d", n=3, mask=lambda k: disc_mask(value=255, seed=k))
    ds = SegmentationFolder(data, "train", classes=1, crop=None)
    assert all(set(np.unique(m).tolist()) == {0.0, 1.0} for m in ds.masks)
    assert (ds.masks[0][0] == (np.asarray(Image.open(data / "masks" / "c0.png")) > 0)).all()
    notes = [n for n in ds.notes if "binary" in n]
    assert notes == ["note: the masks hold the values {0, 255}: read as binary masks "
                     "(255 = foreground) for the model's 1 class"]
    # any {0, max} too (16-bit 0/65535, 0/1 stays as it is)
    wide = write_folder(tmp_path / "w", mask=lambda k: disc_mask(seed=k).astype(np.uint16)
                        * 65535)
    assert SegmentationFolder(wide, "train", crop=None).masks[0].max() == 1
    # with K classes 0/255 is not binary, and no suggestion exceeds the distinct values
    with pytest.raises(DataError, match=r"c0.png: label values \{0, 255\} but the model has "
                       r"3 classes") as err:
        SegmentationFolder(data, "train", classes=3, crop=None)
    assert "classes=256" not in str(err.value) and "--palette" in str(err.value)


def test_suggestions_never_exceed_the_distinct_values(tmp_path):
    three = write_folder(tmp_path / "t", mask=lambda k: np.repeat(
        np.array([0, 128, 255], np.uint8), 8)[None].repeat(24, 0))
    with pytest.raises(DataError) as err:
        SegmentationFolder(three, "train", crop=None)
    msg = str(err.value)
    assert "c0.png: label values {0, 128, 255} but the model has 1 class" in msg
    assert "classes=256" not in msg and "classes=129" not in msg
    assert "--binary" in msg and "--ignore-index 255" in msg
    assert "--palette '{\"0\": 0, \"128\": 1, \"255\": 2}' --set classes=3" in msg
    # and the palette it proposes reads the masks
    table, colour = parse_palette('{"0": 0, "128": 1, "255": 2}')
    ds = SegmentationFolder(three, "train", classes=3, crop=None,
                            read=ReadOptions(palette=table, colour_palette=colour))
    assert ds.masks[0].argmax(0)[0].tolist() == [0] * 8 + [1] * 8 + [2] * 8
    # consecutive values: the class count is the one suggestion
    with pytest.raises(DataError, match=r"add --set classes=3 \(or --binary"):
        SegmentationFolder(write_folder(tmp_path / "c", mask=lambda k: np.repeat(
            np.array([0, 1, 2], np.uint8), 8)[None].repeat(24, 0)), "train", crop=None)


# --- 2. the ignore label (reading; losses and metrics: tests/test_user_training.py) -------

def test_ignore_label_becomes_ignore_in_every_channel(tmp_path):
    def mask(k):
        m = disc_mask(seed=k)
        m[:3] = 255  # unlabelled border
        return m
    data = write_folder(tmp_path / "d", mask=mask)
    with pytest.raises(DataError, match="--ignore-index 255 if 255 marks unlabelled"):
        SegmentationFolder(data, "train", classes=2, crop=None)
    ds = SegmentationFolder(data, "train", classes=2, crop=None, read=ReadOptions(ignore_index=255))
    assert ds.ignored and (ds.masks[0][:, :3] == IGNORE).all()
    assert set(np.unique(ds.masks[0][:, 3:]).tolist()) == {0.0, 1.0}
    # nnU-Net's dataset.json `labels: {ignore: N}` is read when no option is given
    (data / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "nucleus": 1, "ignore": 255}}))
    one = SegmentationFolder(data, "train", classes=1, crop=None)
    assert one.ignored and (one.masks[0][0, :3] == IGNORE).all()


# --- 3. colour masks -----------------------------------------------------------------------

def green(k):
    m = disc_mask(seed=k)
    rgb = np.zeros(m.shape + (3,), np.uint8)
    rgb[m > 0] = (0, 255, 0)
    return rgb


def test_colour_masks_need_a_palette_and_are_never_read_by_one_channel(tmp_path):
    data = write_folder(tmp_path / "d", mask=green)
    with pytest.raises(DataError, match=r"c0.png: a colour mask \(2 colours, e.g. \{\(0, 0, 0\), "
                       r"\(0, 255, 0\)\}\).*--palette"):
        SegmentationFolder(data, "train", crop=None)
    with pytest.raises(DataError, match="colour mask"):  # --binary would read one channel
        SegmentationFolder(data, "train", crop=None, binary=True)
    table, colour = parse_palette('{"#000000": 0, "0,255,0": 1}')
    ds = SegmentationFolder(data, "train", crop=None,
                            read=ReadOptions(palette=table, colour_palette=colour))
    assert (ds.masks[0][0] == (disc_mask(seed=0) > 0)).all() and ds.masks[0].sum() > 0
    # a colour outside the palette names the colour
    table, colour = parse_palette('{"#000000": 0, "#ff0000": 1}')
    with pytest.raises(DataError, match=r"\(0, 255, 0\)\} are not in --palette"):
        SegmentationFolder(data, "train", crop=None,
                           read=ReadOptions(palette=table, colour_palette=colour))
    # gray stored as RGB and palette-indexed PNGs (VOC style) are label values
    gray = write_folder(tmp_path / "g", mask=lambda k: np.stack([disc_mask(seed=k)] * 3, -1))
    assert SegmentationFolder(gray, "train", crop=None).masks[0].sum() == disc_mask().sum()

    def indexed(k):
        im = Image.fromarray(disc_mask(seed=k) * 2, mode="L").convert("P")
        im.putpalette([0, 0, 0, 9, 9, 9, 200, 30, 30] + [0] * 759)
        return im
    pal = write_folder(tmp_path / "p", mask=indexed)
    assert Image.open(pal / "masks" / "c0.png").mode == "P"
    ds = SegmentationFolder(pal, "train", classes=3, crop=None)
    assert ds.masks[0][2].sum() == disc_mask().sum()
    with pytest.raises(ValueError, match="neither a colour"):
        parse_palette('{"green": 1}')


# --- 4. RGBA, gray+alpha, RGB+NIR ---------------------------------------------------------

def test_all_channels_are_kept_unless_drop_alpha(tmp_path):
    def rgba(k, m):
        rng = np.random.default_rng(k)
        a = rng.integers(0, 255, m.shape + (4,)).astype(np.uint8)
        a[..., 3] = 255 * (m > 0)  # a 4th channel that carries signal (alpha or NIR)
        return a
    data = write_folder(tmp_path / "rgba", image=rgba)
    ds = SegmentationFolder(data, "train", crop=None)
    assert ds.channels == 4
    assert np.corrcoef(ds.images[0][3].ravel(), ds.masks[0][0].ravel())[0, 1] > 0.99
    assert SegmentationFolder(data, "train", crop=None,
                              read=ReadOptions(drop_alpha=True)).channels == 3
    # gray + alpha follows the same rule
    la = write_folder(tmp_path / "la", image=lambda k, m: Image.fromarray(
        np.stack([m * 100, m * 255], -1).astype(np.uint8), mode="LA"))
    assert SegmentationFolder(la, "train", crop=None).channels == 2
    assert SegmentationFolder(la, "train", crop=None,
                              read=ReadOptions(drop_alpha=True)).channels == 1
    # a multi-page TIFF (RGB + NIR as 4 pages) keeps every page as a channel

    def pages(k, m):
        return [Image.fromarray((m * (10 * p + 1)).astype(np.uint8)) for p in range(4)]
    nir = write_folder(tmp_path / "nir")
    for k in range(2):
        m = np.asarray(Image.open(nir / "masks" / f"c{k}.png"))
        first, *rest = pages(k, m)
        (nir / "images" / f"c{k}.png").unlink()
        first.save(nir / "images" / f"c{k}.tif", save_all=True, append_images=rest)
    assert SegmentationFolder(nir, "train", crop=None).channels == 4


# --- 5. NaN / inf pixels (reading; a non-finite loss: tests/test_user_training.py) --------

def test_non_finite_pixels_are_found_when_read(tmp_path):
    def nan_image(k, m):
        a = (m * 100.0 + 5).astype(np.float32)
        a[:2, :3] = np.nan
        a[5, 5] = np.inf
        return Image.fromarray(a, mode="F")
    data = write_folder(tmp_path / "d", image=nan_image, ext=".tif")
    with pytest.raises(DataError, match=r"images/c0.tif: 7 NaN/inf value\(s\) of 576.*"
                       r"--replace-nonfinite"):
        SegmentationFolder(data, "train", crop=None)
    ds = SegmentationFolder(data, "train", crop=None, read=ReadOptions(replace_nonfinite=True))
    assert np.isfinite(ds.images[0]).all() and (ds.images[0][0, :2, :3] == 0).all()
    assert any("replaced 7 NaN/inf" in n for n in ds.notes)
    # a NaN in a float mask is named too, never a traceback
    bad = write_folder(tmp_path / "m", mask=lambda k: Image.fromarray(
        np.where(disc_mask(seed=k) > 0, np.nan, 0).astype(np.float32), mode="F"),
        mask_ext=".tif")
    with pytest.raises(DataError, match="c0.tif: the label map holds non-finite values"):
        SegmentationFolder(bad, "train", crop=None)


# --- 6. JPEG and other image formats -------------------------------------------------------

def test_every_pillow_format_is_an_image_and_masks_stay_lossless(tmp_path):
    for ext in (".jpg", ".bmp", ".webp", ".gif"):
        ds = SegmentationFolder(write_folder(tmp_path / ext[1:], ext=ext), "train", crop=None)
        assert ds.channels in (1, 3) and ds.files[0] == (f"c0{ext}", "c0.png")
    with pytest.raises(DataError, match=r"masks/c0.jpg: a JPEG mask: JPEG compression is "
                       r"lossy.*lossless format \(PNG or TIFF\)"):
        SegmentationFolder(write_folder(tmp_path / "jm", mask_ext=".jpg"), "train", crop=None)
    # two files for one image are named, not one of them picked
    data = write_folder(tmp_path / "two")
    Image.open(data / "images" / "c0.png").save(data / "images" / "c0.jpg")
    with pytest.raises(DataError, match="c0.jpg and c0.png have the same name"):
        SegmentationFolder(data, "train", crop=None)


# --- split: a folder without split.json ----------------------------------------------------

def test_a_folder_without_split_json_gets_a_deterministic_printed_split(tmp_path):
    data = write_folder(tmp_path / "d", n=8, split=False)
    parts = {s: SegmentationFolder(data, s, crop=None) for s in ("train", "val", "test")}
    names = {s: set(ds.names) for s, ds in parts.items()}
    assert names["train"] | names["val"] | names["test"] == {f"c{k}" for k in range(8)}
    assert not names["train"] & names["val"] and not names["train"] & names["test"]
    assert len(names["val"]) == len(names["test"]) == 1
    note = parts["val"].notes[0]
    assert note.startswith(f"no split.json in {data}: a deterministic split by name hash, "
                           "train 6 (") and "write" in note
    assert SegmentationFolder(data, "val", crop=None).names == parts["val"].names  # stable
    # too few cases to hold any out: said loudly
    small = write_folder(tmp_path / "s", n=2, split=False)
    assert "too few to hold any out: validation and test use the training cases" in \
        SegmentationFolder(small, "val", crop=None).notes[0]
    assert SegmentationFolder(small, "train", crop=None).notes == []


# --- 7. NIfTI geometry, and the volume readers' share of 1, 2, 5 ---------------------------

def write_case(root, name, image, label, affine=None, label_affine=None):
    nib = pytest.importorskip("nibabel")
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    affine = np.diag([1.5, 1.0, 2.0, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine),
             str(root / "imagesTr" / f"{name}.nii.gz"))
    nib.save(nib.Nifti1Image(label, affine if label_affine is None else label_affine),
             str(root / "labelsTr" / f"{name}.nii.gz"))


def box_case(shape=(12, 16, 8), value=1, seed=0):
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    label[2:6, 3:10, 1:5] = value
    image = rng.normal(0, 0.2, shape) + (label > 0) + np.linspace(0, 1, shape[0])[:, None, None]
    return image, label


def test_nifti_geometry_is_checked_reoriented_and_reported(tmp_path):
    pytest.importorskip("monai")
    from skipgraph.compile import compile_ir
    from skipgraph.graph import build_ir
    from skipgraph.spec import load_spec
    from skipgraph.train.volumes import VolumeFolder
    from skipgraph.label_rule import label_map
    from skipgraph.train.windows import infer
    from tests.conftest import SPECS
    image, label = box_case()
    ras = np.diag([1.5, 1.0, 2.0, 1.0])
    write_case(tmp_path / "ras", "a", image, label, ras)
    # the same case stored flipped along x (LAS): the affine says so, the voxels are the same
    las = ras.copy()
    las[0, 0], las[0, 3] = -1.5, 1.5 * (image.shape[0] - 1)
    write_case(tmp_path / "las", "a", image[::-1], label[::-1], las)
    a = VolumeFolder(tmp_path / "ras", None, classes=2)
    b = VolumeFolder(tmp_path / "las", None, classes=2)
    assert (a.images[0] == b.images[0]).all() and (a.labels[0] == b.labels[0]).all()
    assert a.spacings == b.spacings == [(1.5, 1.0, 2.0)] and a.spacing_note() == \
        "spacing 1.5x1x2 mm"
    assert any("reoriented to RAS (e.g. a (LAS))" in n for n in b.notes)
    model = compile_ir(build_ir(load_spec(str(SPECS / "unet.yaml"), {
        "dims": 3, "depth": 2, "base": 2, "classes": 2})), seed=0)
    preds = [label_map(infer(model, torch.from_numpy(ds.images[0])[None])) for ds in (a, b)]
    assert torch.equal(preds[0], preds[1])
    # a label on another grid (shifted origin) is refused with both affines
    moved = ras.copy()
    moved[:3, 3] = (0, 4.0, 0)
    write_case(tmp_path / "bad", "a", image, label, ras, label_affine=moved)
    with pytest.raises(DataError, match=r"labelsTr/a.nii.gz: its affine differs from .*"
                       r"imagesTr/a.nii.gz's by more than 0.001 mm.*a.nii.gz \(RAS\): "
                       r"\[1.5 0 0 0; 0 1 0 0; 0 0 2 0\] vs a.nii.gz \(RAS\): "
                       r"\[1.5 0 0 0; 0 1 0 4; 0 0 2 0\]"):
        VolumeFolder(tmp_path / "bad", None, classes=2)
    # rounding in a header is not a mismatch
    near = ras.copy()
    near[0, 3] = 2e-4
    write_case(tmp_path / "near", "a", image, label, ras, label_affine=near)
    assert VolumeFolder(tmp_path / "near", None, classes=2).labels[0].max() == 1


def test_volume_readers_apply_the_same_label_and_pixel_rules(tmp_path):
    pytest.importorskip("monai")
    from skipgraph.train.volumes import VolumeFolder
    for k in range(2):  # 0/255 label maps with a one-class model
        image, label = box_case(value=255, seed=k)
        write_case(tmp_path / "b", f"c{k}", image, label)
    ds = VolumeFolder(tmp_path / "b", None, classes=1)
    assert ds.labels[0].max() == 1 and any("{0, 255}: read as binary" in n for n in ds.notes)
    # the ignore label from dataset.json
    image, label = box_case()
    label[:, :, 7] = 4
    write_case(tmp_path / "i", "c0", image, label)
    (tmp_path / "i" / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "a": 1, "ignore": 4}}))
    ds = VolumeFolder(tmp_path / "i", None, classes=2)
    assert ds.ignored and (ds.labels[0][:, :, 7] == IGNORE).all()
    x, y = ds[0]
    assert y.shape[0] == 2 and ((y == IGNORE).all(0) == (y[0] < 0)).all() and (y < 0).any()
    # NaN voxels: named with the count, or replaced on request
    image, label = box_case()
    image[0, 0, :3] = np.nan
    write_case(tmp_path / "n", "c0", image, label)
    with pytest.raises(DataError, match=r"imagesTr/c0.nii.gz: 3 NaN/inf value\(s\)"):
        VolumeFolder(tmp_path / "n", None, classes=2)
    ds = VolumeFolder(tmp_path / "n", None, classes=2, read=ReadOptions(replace_nonfinite=True))
    assert np.isfinite(ds.images[0]).all()


def test_the_nnunet_converter_reads_labels_by_the_same_rule(tmp_path):
    pytest.importorskip("nibabel")
    from skipgraph.integrations.nnunet.dataset import msd_to_raw
    image, label = box_case()
    write_case(tmp_path / "src", "ok", image, label)
    label[0, 0, 0] = 7
    write_case(tmp_path / "src", "odd", image, label)
    moved = np.diag([1.5, 1.0, 2.0, 1.0])
    moved[2, 3] = 1.0
    write_case(tmp_path / "src", "moved", image, box_case()[1], label_affine=moved)
    labels = {"background": 0, "a": 1}
    out = msd_to_raw(tmp_path / "src", tmp_path / "raw", 1, "T", labels, ["ok"])
    assert (out / "labelsTr" / "ok.nii.gz").is_file()
    with pytest.raises(DataError, match=r"odd.nii.gz: label values \{0, 1, 7\} but labels "
                       r"\{'background': 0, 'a': 1\} has 2 classes"):
        msd_to_raw(tmp_path / "src", tmp_path / "raw", 2, "T", labels, ["ok", "odd"])
    assert not (tmp_path / "raw" / "Dataset002_T").exists()  # nothing half-written
    # nnU-Net's ignore label is a label value; the geometry is checked as in training
    msd_to_raw(tmp_path / "src", tmp_path / "raw", 3, "T", {**labels, "ignore": 7}, ["odd"])
    with pytest.raises(DataError, match="moved.nii.gz: its affine differs"):
        msd_to_raw(tmp_path / "src", tmp_path / "raw", 4, "T", labels, ["moved"])


def test_the_nnunet_convert_command(tmp_path, capsys):
    """`skipgraph nnunet convert` is the documented converter: labels from --labels or the
    folder's dataset.json, cases from split.json (train + val train, test -> imagesTs)."""
    pytest.importorskip("nibabel")
    from skipgraph.cli import main
    image, label = box_case()
    for case in ("a", "b", "c"):
        write_case(tmp_path / "src", case, image, label)
    (tmp_path / "src" / "split.json").write_text(json.dumps(
        {"train": ["a"], "val": ["b"], "test": ["c"]}))
    assert main(["nnunet", "convert", str(tmp_path / "src"), "--raw", str(tmp_path / "raw"),
                 "--id", "5", "--name", "T", "--labels", "background=0", "box=1"]) == 0
    out = tmp_path / "raw" / "Dataset005_T"
    assert "2 training cases, 1 test cases" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["a.nii.gz", "b.nii.gz"]
    assert [p.name for p in (out / "imagesTs").iterdir()] == ["c_0000.nii.gz"]
    assert json.loads((out / "dataset.json").read_text())["labels"] == {"background": 0,
                                                                        "box": 1}
    # no --labels and no dataset.json: exit 2 naming the option
    assert main(["nnunet", "convert", str(tmp_path / "src"), "--raw", str(tmp_path / "r2"),
                 "--id", "6", "--name", "T"]) == 2
    assert "give them with --labels" in capsys.readouterr().err
    (tmp_path / "src" / "dataset.json").write_text(json.dumps(
        {"labels": {"0": "background", "1": "box"}}))  # MSD's own form
    assert main(["nnunet", "convert", str(tmp_path / "src"), "--raw", str(tmp_path / "r3"),
                 "--id", "7", "--name", "T"]) == 0
    assert main(["nnunet", "convert", str(tmp_path / "src"), "--raw", str(tmp_path / "r4"),
                 "--id", "8", "--name", "T", "--labels", "box"]) == 2
    assert "write NAME=VALUE" in capsys.readouterr().err


# --- issue-25 UX: leaking splits, empty and missing folders, masks without images ----------

def test_a_split_json_with_a_training_case_held_out_is_refused(tmp_path):
    from skipgraph.train import SegmentationFolder
    data = write_folder(tmp_path / "d", n=3, size=16)
    (data / "split.json").write_text(json.dumps(
        {"train": ["c0", "c1.png"], "val": ["c2"], "test": ["c1"]}))
    with pytest.raises(DataError, match=r"split.json: c1 listed in both `train` and `test`"):
        SegmentationFolder(data, "train", crop=None)
    (data / "split.json").write_text(json.dumps(
        {"train": ["c0", "c1"], "val": ["c2", "c0"], "test": ["c2"]}))
    with pytest.raises(DataError, match=r"c0 listed in both `train` and `val`"):
        SegmentationFolder(data, "test", crop=None)  # whichever split is read


def test_volume_split_json_with_a_leak_is_refused(tmp_path):
    pytest.importorskip("nibabel")
    from skipgraph.train.volumes import VolumeFolder
    for k, name in enumerate(("a", "b")):
        write_case(tmp_path / "v", name, *box_case(seed=k))
    (tmp_path / "v" / "split.json").write_text(json.dumps(
        {"train": ["a.nii.gz", "b"], "val": ["a"]}))
    with pytest.raises(DataError, match=r"a listed in both `train` and `val`"):
        VolumeFolder(tmp_path / "v", "train")


def test_empty_and_missing_data_folders_say_so(tmp_path, capsys):
    from skipgraph.cli import main
    (tmp_path / "e" / "images").mkdir(parents=True)
    (tmp_path / "e" / "masks").mkdir()
    argv = ["--epochs", "1", "--steps", "1", "--crop", "16", "--out", str(tmp_path / "r")]
    assert main(["train", "unet", "--data", str(tmp_path / "e"), *argv]) == 2
    assert f"no images found in {tmp_path / 'e' / 'images'}/" in capsys.readouterr().err
    assert main(["train", "unet", "--data", str(tmp_path / "nope"), *argv]) == 2
    assert f"{tmp_path / 'nope'}: the data folder does not exist" in capsys.readouterr().err


def test_a_mask_without_an_image_is_an_error_as_an_image_without_a_mask(tmp_path):
    from skipgraph.train import SegmentationFolder
    data = write_folder(tmp_path / "d", n=2, size=16)
    Image.fromarray(disc_mask(16)).save(data / "masks" / "stray.png")
    with pytest.raises(DataError, match=r"masks/stray.png has no image in images/"):
        SegmentationFolder(data, "train", crop=None)


def test_a_volume_image_without_a_label_map_is_an_error(tmp_path):
    pytest.importorskip("nibabel")
    from skipgraph.train.volumes import VolumeFolder
    for k, name in enumerate(("a", "b")):
        write_case(tmp_path / "v", name, *box_case(seed=k))
    (tmp_path / "v" / "labelsTr" / "b.nii.gz").unlink()
    with pytest.raises(DataError, match=r"imagesTr/ case b has no label map in labelsTr/"):
        VolumeFolder(tmp_path / "v", None)
    (tmp_path / "v" / "labelsTr" / "a.nii.gz").unlink()
    with pytest.raises(DataError, match=r"no label maps \(\*.nii.gz\) found in .*labelsTr/"):
        VolumeFolder(tmp_path / "v", None)


def test_the_nnunet_converter_refuses_a_leaking_split(tmp_path):
    from skipgraph.integrations.nnunet.dataset import msd_split
    (tmp_path / "split.json").write_text(json.dumps(
        {"train": ["a", "b"], "val": ["c"], "test": ["b"]}))
    with pytest.raises(DataError, match=r"b listed in both `train` and `test`"):
        msd_split(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps(  # val cases train nnU-Net too
        {"train": ["a"], "val": ["c"], "test": ["c"]}))
    with pytest.raises(DataError, match=r"c listed in both `train` and `test`"):
        msd_split(tmp_path)

"""Fuzzing: mutated zoo specs and random small graphs either build a working module or raise a
SpecError that points into the file; never another exception, a hang, or a silent wrong model.

The CI run tries a bounded, seeded number of examples; set SKIPGRAPH_FUZZ_EXAMPLES for more.
"""
from __future__ import annotations

import os
import re

import pytest
import torch
import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from skipgraph.compile import compile_ir
from skipgraph.errors import SpecError
from skipgraph.graph import build_ir
from skipgraph.graph.estimate import estimate_params
from skipgraph.spec import load_spec_text
from tests.conftest import TINY_SPEC, ZOO

EXAMPLES = int(os.environ.get("SKIPGRAPH_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TEXTS = {p.stem: p.read_text() for p in ZOO if "extends:" not in p.read_text()}

VALUES = st.one_of(
    st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.booleans(), st.none(), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["0..depth", "X[i,j]", "base * 2**i", "${depth}", "${nope}", "X[i+1,j-1]",
                     "2**999", "é∂ƒ", "__import__('os')", "1/0", "-5", "10**10"]),
)


def attempt(text: str) -> str:
    """Load, expand, validate, and build+run when small. Returns what happened."""
    try:
        ir = build_ir(load_spec_text(text, file="fuzz.yaml"))
    except SpecError as exc:
        assert any(d.span is not None and d.span.file == "fuzz.yaml" and d.span.line >= 1
                   for d in exc.diagnostics), exc.format()
        return "spec-error"
    if estimate_params(ir) > 3e6:
        return "valid (large, not built)"
    try:
        model = compile_ir(ir, seed=0).eval()
    except SpecError:
        return "spec-error"
    s = 2 ** ir.max_level * 2
    with torch.no_grad():
        out = model(torch.randn(1, ir.in_channels, *[s] * ir.dims))
    assert out.shape[0] == 1 and torch.isfinite(out).all()
    return "built and ran"


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))


@st.composite
def mutated_specs(draw):
    name = draw(st.sampled_from(sorted(TEXTS)))
    text = TEXTS[name]
    kind = draw(st.sampled_from(["delete", "retype", "duplicate", "indent", "bytes", "alias",
                                 "nest", "unicode"]))
    lines = text.splitlines()
    if kind in ("delete", "retype", "nest"):
        doc = yaml.safe_load(text)
        doc.pop("on", None)
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "retype":
            parent[path[-1]] = draw(VALUES)
        else:
            value = parent[path[-1]]
            for _ in range(draw(st.integers(1, 60))):
                value = [value] if draw(st.booleans()) else {"k": value}
            parent[path[-1]] = value
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "indent":
        lines[i] = " " * draw(st.integers(0, 7)) + lines[i].lstrip()
    elif kind == "bytes":
        junk = draw(st.binary(min_size=1, max_size=20)).decode("latin-1")
        lines[i] = lines[i][: len(lines[i]) // 2] + junk
    elif kind == "alias":
        lines.insert(i, "x_anchor: &a [1, 2, *a]" if draw(st.booleans()) else "y: &b {c: 1}")
    else:
        lines[i] = lines[i] + " # ü " + draw(st.text(max_size=10))
    return "\n".join(lines)


@FUZZ
@seed(1234)
@given(mutated_specs())
def test_mutated_zoo_specs(text):
    attempt(text)


EDGE_MENU = {
    "encoder": '{from: "X[i-1,0]", to: "X[i,0]"}',
    "up": '{from: "X[i+1,j-1]", to: "X[i,j]"}',
    "skip": '{from: "X[i,0]", to: "X[i,j]", if: "j > 0"}',
    "dense": '{from: "X[i,k]", to: "X[i,j]", for: {k: 0..j-1}}',
    "chain": '{from: "X[i,j-1]", to: "X[i,j]"}',
    "full": '{from: "X[i+m,j-m]", to: "X[i,j]", for: {m: 2..j}, conv: {width: 4}}',
    "down_full": '{from: "X[i-2,j]", to: "X[i,j]", down: {op: maxpool, ceil: true}}',
}


@st.composite
def random_graphs(draw):
    depth = draw(st.integers(1, 3))
    families = draw(st.lists(st.sampled_from(sorted(EDGE_MENU)), min_size=1, max_size=5,
                             unique=True))
    cond = draw(st.sampled_from(["true", "j == 0 or i + j == depth", "i + j <= depth",
                                 "j <= 1"]))
    up = draw(st.sampled_from(["transpose", "bilinear", "nearest", "upconv"]))
    merge = draw(st.sampled_from(["concat", "sum"]))
    norm = draw(st.sampled_from(["none", "batch", "group", "instance"]))
    dims = draw(st.sampled_from([2, 3]))
    edges = "\n".join(f"  {f}: {EDGE_MENU[f]}" for f in families)
    return f"""skipgraph: 1
name: random
params: {{depth: {depth}, base: 4, in_channels: 1, classes: 1}}
dims: {dims}
defaults:
  block: {{type: conv, convs: 1, norm: {norm}}}
  up: {{op: {up}}}
nodes:
  X: {{for: {{i: 0..depth, j: 0..depth-i}}, if: "{cond}", width: base * 2**i, merge: {merge}}}
edges:
  stem: {{from: input, to: "X[0,0]"}}
{edges}
heads:
  seg: {{on: "X[0,j]", if: "j == depth", out: classes}}
"""


@FUZZ
@seed(4321)
@given(random_graphs())
def test_random_small_graphs(text):
    attempt(text)


def test_attempt_reports_each_outcome():
    assert attempt(TEXTS["unet"].replace("depth: 4", "depth: 2").replace("base: 32", "base: 4")) \
        == "built and ran"
    assert attempt(TEXTS["unet"].replace("width:", "widht:")) == "spec-error"
    assert attempt(TEXTS["unet_pp"]) == "valid (large, not built)"


# --- the training command on random data --------------------------------------------------

TRAIN_EXAMPLES = int(os.environ.get("SKIPGRAPH_FUZZ_TRAIN_EXAMPLES", "10"))
# no shrinking: each example is a training run, and a failing one is reported as drawn
TRAIN_FUZZ = settings(max_examples=TRAIN_EXAMPLES, deadline=None, derandomize=True,
                      suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.reuse, Phase.generate])
PAD_TINY = TINY_SPEC.replace("name: tiny", "name: padded\ninput: {channels: in_channels, "
                             "pad: true}")
TRAIN_SPECS = {  # spec -> --set options that keep it tiny
    "unet": ["depth=1", "base=2"], "unet_pp": ["depth=2", "base=2", "ds=true"],
    "unet_sharp": ["depth=2", "base=2", "cgm=true", "ds=true"], "padded": [],
}
TRAIN_OUTCOMES: dict[str, int] = {}


def train_attempt(spec: str, sets: list[str], sizes: list[tuple[int, int]], channels: int,
                  values: list[int], crop: int, batch: int, root) -> str:
    """Run `skipgraph train` on images of ``sizes``; returns "trained" or "exit 2: ..." and
    fails on any other exit status, an exception, or a traceback in the output."""
    import contextlib
    import io

    import numpy as np
    from PIL import Image

    from skipgraph.cli import main
    rng = np.random.default_rng(len(sizes) * 1000 + crop)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for k, (h, w) in enumerate(sizes):
        image = rng.integers(0, 255, (h, w) + ((3,) if channels == 3 else ()), dtype=np.uint8)
        mask = rng.choice(np.array(values, dtype=np.uint8), (h, w))
        Image.fromarray(image).save(root / "images" / f"i{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"i{k}.png")
    if spec == "padded":
        (root / "padded.yaml").write_text(PAD_TINY)
        spec = str(root / "padded.yaml")
    argv = ["train", spec, "--data", str(root), "--crop", str(crop), "--batch", str(batch),
            "--epochs", "1", "--steps", "1", "--samples-per-image", "1", "--device", "cpu",
            "--out", str(root / "run")] + [a for s in sets for a in ("--set", s)]
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = main(argv)
    text = err.getvalue()
    assert "Traceback" not in text + out.getvalue(), text
    assert status in (0, 2), (status, text)
    if status == 0:
        assert (root / "run" / "last.pt").exists()
        return "trained"
    assert "error: " in text, text
    first = re.sub(r"/\S+|\d+", "_", text.split("error: ", 1)[1].splitlines()[0])
    return "exit 2: " + first[:60]


@st.composite
def training_runs(draw):
    spec = draw(st.sampled_from(sorted(TRAIN_SPECS)))
    channels = draw(st.sampled_from([1, 3]))
    sets = list(TRAIN_SPECS[spec])
    in_channels = draw(st.sampled_from([channels, channels, 1, 3]))
    classes = draw(st.sampled_from([1, 1, 2, 3]))
    sets += [f"in_channels={in_channels}", f"classes={classes}"]
    sizes = draw(st.lists(st.tuples(st.integers(1, 70), st.integers(1, 70)), min_size=1,
                          max_size=3))
    values = draw(st.lists(st.integers(0, draw(st.sampled_from([classes, 4]))), min_size=1,
                           max_size=3, unique=True))
    crop = draw(st.one_of(st.integers(1, 80), st.integers(1, 20).map(lambda k: 4 * k)))
    batch = draw(st.integers(1, 4))
    return spec, sets, sizes, channels, values, crop, batch


@TRAIN_FUZZ
@seed(2024)
@given(training_runs())
def test_train_on_random_data_trains_or_exits_2(run):
    import json
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        outcome = train_attempt(*run, root=Path(tmp) / "data")
    TRAIN_OUTCOMES[outcome] = TRAIN_OUTCOMES.get(outcome, 0) + 1
    if os.environ.get("SKIPGRAPH_FUZZ_REPORT"):  # the counts, for the record
        Path(os.environ["SKIPGRAPH_FUZZ_REPORT"]).write_text(json.dumps(TRAIN_OUTCOMES, indent=1))

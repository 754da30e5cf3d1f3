from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MALFORMED = Path(__file__).resolve().parent / "data" / "malformed"
# backbone specs need their provider's extra: timm's (`backbones`; tests/test_backbone.py covers
# them) and MONAI's FlexibleUNet encoders (`monai`; tests/integrations/test_peers_flexible.py);
# the zoo-wide tests below assume a spec that builds in 2D and 3D with nothing but the core
BACKBONE_ZOO = sorted([*SPECS.glob("timm_*.yaml"), SPECS / "monai_flexible_unet.yaml"])
ZOO = sorted(set(SPECS.glob("*.yaml")) - set(BACKBONE_ZOO))
# the specs every default test run covers; the rest of the zoo runs in `make test-slow`
CORE = {"unet", "unet_pp", "unet3p", "unet_sharp", "bionet", "attention_unet"}


def zoo_params(core: set[str] = CORE) -> list:
    """Zoo specs as pytest params, those outside ``core`` marked slow."""
    return [pytest.param(p, id=p.stem, marks=() if p.stem in core else pytest.mark.slow)
            for p in ZOO]

TINY_SPEC = """\
skipgraph: 1
name: tiny
params: {depth: 2, base: 4, in_channels: 1, classes: 1, ds: false}
nodes:
  X: {for: {i: 0..depth, j: 0..depth-i}, width: base * 2**i}
edges:
  stem:    {from: input, to: "X[0,0]"}
  encoder: {from: "X[i-1,0]", to: "X[i,0]"}
  dense:   {from: "X[i,k]", to: "X[i,j]", for: {k: 0..j-1}, kind: dense}
  up:      {from: "X[i+1,j-1]", to: "X[i,j]"}
heads:
  seg: {on: "X[0,j]", if: "j == depth or (ds and j >= 1)", out: classes, act: sigmoid}
output: {mode: "${'ensemble' if ds else 'select'}"}
"""


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC)
    return path


@pytest.fixture
def write_spec(tmp_path: Path):
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write

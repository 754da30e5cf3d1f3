"""Zoo counts that tests/test_zoo.py pins (it checks that the built models have them), derived
here by hand (term by term from each paper's layer list) instead of read back from the code's
own output."""
from __future__ import annotations

import pytest

import skipgraph
from tests.conftest import SPECS
from tests.test_zoo import COUNTS


def _conv(k: int, c_in: int, c_out: int, bn: bool) -> int:
    """A k-volume conv with bias, plus a BatchNorm's weight and bias per output channel."""
    return k * c_in * c_out + c_out + (2 * c_out if bn else 0)


def unet_count(base=32, depth=4, dims=2, c_in=1, bn=False, bilinear=False, classes=1):
    """U-Net as the UNet++ paper counts it: double 3x3 convs (bias) on c_i = base * 2**i, 2x2
    transposed convs to the target width (or bilinear, no weights: the decoder conv then takes
    c_i + c_(i+1)), a 1x1 head."""
    k, t = 3 ** dims, 2 ** dims
    c = [base * 2 ** i for i in range(depth + 1)]
    n = _conv(k, c_in, c[0], bn) + _conv(k, c[0], c[0], bn)
    for i in range(1, depth + 1):                       # encoder X[i,0]
        n += _conv(k, c[i - 1], c[i], bn) + _conv(k, c[i], c[i], bn)
    for i in range(depth):                              # decoder X[i, depth-i]
        up = c[i + 1] if bilinear else c[i]
        n += 0 if bilinear else t * c[i + 1] * c[i] + c[i]
        n += _conv(k, c[i] + up, c[i], bn) + _conv(k, c[i], c[i], bn)
    return n + c[0] * classes + classes


def unet_pp_count(base=32, depth=4, c_in=3, ds=False, classes=1):
    """UNet++ (Eq. 1) with batch norm and bilinear up-sampling (the UNet# paper's UNet2+):
    X[i,j] concatenates X[i,0..j-1] (j * c_i) and up(X[i+1,j-1]) (c_(i+1)); 1x1 heads on
    X[0,1..depth] with deep supervision, else on X[0,depth]."""
    k = 9
    c = [base * 2 ** i for i in range(depth + 1)]
    n = _conv(k, c_in, c[0], True) + _conv(k, c[0], c[0], True)
    for i in range(1, depth + 1):
        n += _conv(k, c[i - 1], c[i], True) + _conv(k, c[i], c[i], True)
    for i in range(depth):
        for j in range(1, depth - i + 1):
            n += _conv(k, j * c[i] + c[i + 1], c[i], True) + _conv(k, c[i], c[i], True)
    return n + (depth if ds else 1) * (c[0] * classes + classes)


@pytest.mark.parametrize("overrides, expected, by_hand", [
    ({}, 7_759_521, unet_count()),                      # the paper's 7.8M (Tab. I/III)
    ({"base": 35}, 9_282_246, unet_count(base=35)),     # wide U-Net
    ({"dims": 3}, 22_575_329, unet_count(dims=3)),       # V-Net: 22.6M
    ({"dims": 3, "base": 35}, 27_006_176, unet_count(dims=3, base=35)),  # wide V-Net: 27.0M
    # the UNet# paper's U-Net: batch norm, bilinear up-sampling, RGB input
    ({"norm": "batch", "up": "bilinear", "in_channels": 3}, 7_852_545,
     unet_count(c_in=3, bn=True, bilinear=True)),
])
def test_unet_counts_by_hand(overrides, expected, by_hand):
    assert by_hand == expected
    assert any(row[:3] == ("unet", overrides, expected) for row in COUNTS)


@pytest.mark.parametrize("ds, expected", [(False, 9_163_329), (True, 9_163_428)])
def test_unet_sharp_papers_unet_pp_baseline_by_hand(ds, expected):
    assert unet_pp_count(ds=ds) == expected
    overrides = {"norm": "batch", "up": "bilinear", "in_channels": 3, **({"ds": True} if ds else {})}
    assert any(row[:3] == ("unet_pp", overrides, expected) for row in COUNTS)


def test_resnet_unet_3d_is_the_2d_peer_count_with_cubic_kernels():
    """The 2D count equals smp's Unet("resnet34") (tests/test_zoo.py, peer outputs in
    tests/integrations/test_peers.py); in 3D every k x k conv or transposed conv becomes
    k x k x k (k times the weights) and nothing else changes (biases, BatchNorm)."""
    model = skipgraph.build(SPECS / "resnet_unet.yaml", seed=0)
    assert sum(p.numel() for p in model.parameters()) == 24_436_369
    by_hand = sum(p.numel() * (p.shape[-1] if p.dim() == 4 else 1) for p in model.parameters())
    assert by_hand == 72_964_657
    assert ("resnet_unet", {"dims": 3}, 72_964_657) in [row[:3] for row in COUNTS]


def bio_linknet_count(base=32, l=4, t=2, c_in=3, classes=1):
    """BiO-Net with sum fusion (specs/bio_linknet.yaml) from its layer list: c_i = base * 2**i;
    every 3x3 conv and 3x3 transposed conv has a bias and a BatchNorm (weight + bias). The loop
    (E, M, D and the edges between them) shares its conv weights across the t iterations but
    has one BatchNorm per iteration (`norm: per_step`); S, L, the out edge and the head run once.
    Sum fusion keeps every merged input at the node's own width, so each E[i] / D[i] first conv
    takes c_i, and each up-sampling goes to the target width (`out: target`)."""
    c = [base * 2 ** i for i in range(l + 1)]

    def conv(c_in_, c_out):                 # 3x3 conv + bias, its BN counted apart
        return 9 * c_in_ * c_out + c_out

    def bn(ch, times=1):
        return 2 * ch * times

    n = conv(c_in, c[0]) + 2 * conv(c[0], c[0]) + bn(c[0], 3)               # S: 3 convs
    for i in range(l):                                                     # E[i], D[i]
        n += 2 * (2 * conv(c[i], c[i]) + bn(c[i], 2 * t))
    for i in range(1, l):                                                  # down: edge conv
        n += conv(c[i - 1], c[i]) + bn(c[i], t)
    n += conv(c[l - 1], c[l]) + bn(c[l], t)                                # middle edge conv
    n += 2 * conv(c[l], c[l]) + bn(c[l], 2 * t)                            # M
    for i in range(l):                                                     # up: transpose 3x3
        n += conv(c[i + 1], c[i]) + bn(c[i], t)
    n += conv(c[0], c[0]) + bn(c[0])                                       # out edge D[0] -> L
    n += 2 * conv(c[0], c[0]) + bn(c[0], 2)                                # L
    return n + c[0] * classes + classes                                    # 1x1 head


@pytest.mark.parametrize("params", [{}, {"t": 1}, {"t": 3}, {"base": 16, "l": 3}])
def test_bio_linknet_count_by_hand(params):
    from skipgraph.compile.summary import count_params
    expected = bio_linknet_count(**params)
    if not params:
        assert ("bio_linknet", {}, expected) in [row[:3] for row in COUNTS]  # the zoo's pin
    assert count_params(skipgraph.build(SPECS / "bio_linknet.yaml", **params)) == expected

"""RU-Net / R2U-Net / ResU-Net units and Attention U-Net (public-code conventions)."""
import pytest
import torch

import skipgraph
from skipgraph.blocks.builtin import RecurrentParams
from skipgraph.blocks.recurrent import RCL, RecurrentUnit
from skipgraph.compile.summary import count_params
from tests.conftest import SPECS


def conv_bn(cin, cout, k=3):
    return cin * cout * k * k + cout + 2 * cout


def unet_public_count(widths=(64, 128, 256, 512, 1024), unit=None, cin=3):
    """The public U_Net / R2U_Net, term by term."""
    unit = unit or (lambda a, b: conv_bn(a, b) + conv_bn(b, b))
    total, c = 0, cin
    for w in widths:
        total += unit(c, w)
        c = w
    for i in range(len(widths) - 1, 0, -1):
        total += conv_bn(widths[i], widths[i - 1])          # up_conv: nearest x2 + conv + BN
        total += unit(2 * widths[i - 1], widths[i - 1])     # [skip, up] -> unit
    return total + widths[0] + 1                              # 1x1 head


def rrcu(cin, cout):
    return cin * cout + cout + 2 * conv_bn(cout, cout)       # 1x1 projection + two tied RCLs


@pytest.mark.parametrize("spec, overrides, expected", [
    ("r2unet", {"unit": "conv"}, unet_public_count()),
    ("r2unet", {}, unet_public_count(unit=rrcu)),
    ("r2unet", {"t": 3}, unet_public_count(unit=rrcu)),
    ("runet", {}, unet_public_count(unit=rrcu)),
    ("resunet", {}, unet_public_count(unit=rrcu)),
])
def test_counts_follow_the_public_code(spec, overrides, expected):
    assert count_params(skipgraph.build(SPECS / f"{spec}.yaml", **overrides)) == expected


def test_known_totals():
    assert unet_public_count() == 34_527_041
    assert unet_public_count(unit=rrcu) == 39_091_393


def test_attention_unet_count():
    def gates(c):  # W_g, W_x: 1x1 conv + BN to c/2; psi: 1x1 conv to 1 + BN
        f = c // 2
        return 2 * (c * f + f + 2 * f) + f + 1 + 2
    expected = unet_public_count() + sum(gates(c) for c in (64, 128, 256, 512))
    assert count_params(skipgraph.build(SPECS / "attention_unet.yaml")) == expected == 34_878_573


def test_rcl_tied_equals_the_public_recurrence():
    torch.manual_seed(0)
    rcl = RCL(2, 4, 4, steps=2, tied=True, kernel=3, bias=True, norm="none", act="relu",
              norm_per_step=False)
    x = torch.randn(1, 4, 8, 8)
    h = torch.relu(rcl.conv(x))
    for _ in range(2):
        h = torch.relu(rcl.conv(x + h))
    torch.testing.assert_close(rcl(x), h)


def test_rcl_untied_follows_the_paper_equation():
    torch.manual_seed(0)
    rcl = RCL(2, 4, 4, steps=2, tied=False, kernel=3, bias=True, norm="none", act="relu",
              norm_per_step=False)
    x = torch.randn(1, 4, 8, 8)
    h = torch.relu(rcl.conv(x))
    for _ in range(2):
        h = torch.relu(rcl.conv(x) + rcl.conv_r(h))
    torch.testing.assert_close(rcl(x), h)
    assert count_params(rcl) == 2 * 4 * 4 * 9 + 4


def test_per_step_norms():
    unit = RecurrentUnit(2, 3, 8, RecurrentParams(steps=2, norm_per_step=True))
    assert len(unit.rcls[0].norms) == 3
    unit.eval()
    assert unit(torch.randn(1, 3, 8, 8)).shape == (1, 8, 8, 8)


def test_untied_doubles_the_recurrent_weights():
    tied = count_params(skipgraph.build(SPECS / "r2unet.yaml", base=8))
    untied = count_params(skipgraph.build(SPECS / "r2unet.yaml", base=8, tied=False))
    assert untied > tied


def test_attention_gate_multiplies_the_skip():
    model = skipgraph.build(SPECS / "attention_unet.yaml", base=4, depth=2, seed=0).eval()
    assert "gate_skip_X1_0_X1_1 = self.gate_skip_X1_0_X1_1(up_X2_0_X1_1, X1_0)" in model.code
    gate = model.gate_skip_X1_0_X1_1
    g, x = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        psi = gate.psi(torch.relu(gate.W_g(g) + gate.W_x(x)))
        torch.testing.assert_close(gate(g, x), x * psi)

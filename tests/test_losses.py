"""Each loss against a hand computation on a tiny tensor."""
import math

import pytest
import torch

import skipgraph
from skipgraph import losses as L
from tests.conftest import SPECS

P = torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]])
Y = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])


def test_bce():
    hand = -(math.log(0.9) + math.log(0.8) + math.log(0.6) + math.log(0.9)) / 4
    assert L.bce(P, Y).item() == pytest.approx(hand, rel=1e-6)


def test_soft_dice_with_smoothing():
    inter = 0.9 + 0.6
    hand = 1 - (2 * inter + 1) / (1.8 + 2 + 1)
    assert L.soft_dice(P, Y).item() == pytest.approx(hand, rel=1e-6)


def test_focal():
    a, g = 0.25, 2
    hand = (-a * 0.1**g * math.log(0.9) - (1 - a) * 0.2**g * math.log(0.8)
            - a * 0.4**g * math.log(0.6) - (1 - a) * 0.1**g * math.log(0.9)) / 4
    assert L.focal(P, Y).item() == pytest.approx(hand, rel=1e-5)


def test_iou_loss():
    inter = 1.5
    hand = 1 - (inter + 1) / (1.8 + 2 - inter + 1)
    assert L.iou_loss(P, Y).item() == pytest.approx(hand, rel=1e-6)


def test_lovasz_hinge_by_hand():
    # logits s = logit(p); hinge errors e = 1 - s * (2y - 1)
    s = [math.log(p / (1 - p)) for p in (0.9, 0.2, 0.6, 0.1)]
    y = [1, 0, 1, 0]
    e = [1 - si * (2 * yi - 1) for si, yi in zip(s, y)]
    order = sorted(range(4), key=lambda k: -e[k])
    gts = sum(y)
    jac, prev = [], 0.0
    inter, union = gts, gts
    for k in order:                  # Jaccard loss of the growing error prefix
        inter -= y[k]
        union += 1 - y[k]
        j = 1 - inter / union
        jac.append(j - prev)
        prev = j
    hand = sum(max(e[k], 0) * g for k, g in zip(order, jac))
    assert L.lovasz_hinge(P, Y).item() == pytest.approx(hand, rel=1e-5)


def test_perfect_predictions_have_zero_overlap_losses():
    y = torch.zeros(2, 1, 8, 8)
    y[:, :, 2:6, 2:6] = 1
    assert L.soft_dice(y, y, smooth=0).item() == pytest.approx(0)
    assert L.iou_loss(y, y, smooth=0).item() == pytest.approx(0)
    assert L.lovasz_hinge(y.clamp(1e-4, 1 - 1e-4), y).item() == pytest.approx(0, abs=1e-6)


def test_combined_losses_are_the_papers_weighted_sums():
    assert L.bce_dice(P, Y).item() == pytest.approx(L.bce(P, Y) + L.soft_dice(P, Y))
    assert L.focal_dice_lovasz(P, Y).item() == pytest.approx(
        0.5 * L.focal(P, Y) + L.soft_dice(P, Y) + 0.5 * L.lovasz_hinge(P, Y))


def test_ms_ssim_loss():
    y = torch.rand(1, 1, 176, 176)
    assert L.ms_ssim_loss(y, y).item() == pytest.approx(0, abs=1e-5)
    assert L.ms_ssim_loss(torch.rand(1, 1, 176, 176), y).item() > 0.5


def test_cgm_bce():
    probs = torch.tensor([[0.2, 0.8], [0.7, 0.3]])
    y = torch.zeros(2, 1, 2, 2)
    y[0, 0, 0, 0] = 1  # image 0 contains the object, image 1 does not
    hand = -(math.log(0.8) + math.log(0.8) + math.log(0.7) + math.log(0.7)) / 4
    assert L.cgm_bce(probs, y).item() == pytest.approx(hand, rel=1e-6)


def test_resize_target_maxpool_keeps_small_objects():
    y = torch.zeros(1, 1, 4, 4)
    y[0, 0, 0, 0] = 1
    assert L.resize_target(y, 2, "maxpool", 2).tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]
    assert L.resize_target(y, 2, "avgpool", 2)[0, 0, 0, 0].item() == 0.25


def test_deep_supervision_sum_and_mean():
    torch.manual_seed(0)
    m = skipgraph.build(SPECS / "unet_pp.yaml", base=4, depth=2, ds=True).train()
    y = (torch.rand(2, 1, 16, 16) > 0.5).float()
    out = m(torch.randn(2, 1, 16, 16))
    per_head = [L.bce_dice(p, y) for p in out.values()]
    total = L.DeepSupervisionLoss(m.ir, "bce_dice", "sum")(out, y)
    assert total.item() == pytest.approx(sum(per_head).item(), rel=1e-6)
    mean = L.DeepSupervisionLoss(m.ir, "bce_dice", "mean", weights=[2, 1])(out, y)
    assert mean.item() == pytest.approx(((2 * per_head[0] + per_head[1]) / 2).item(), rel=1e-6)


def test_low_resolution_heads_see_pooled_targets():
    m = skipgraph.build(SPECS / "unet_sharp.yaml", base=4, ds=True).train()
    y = (torch.rand(2, 1, 32, 32) > 0.7).float()
    out = m(torch.randn(2, 3, 32, 32))
    loss = L.loss_for(m)
    assert loss.combine == "mean"
    expected = torch.stack([L.focal_dice_lovasz(
        p, L.resize_target(y, 2 ** m.ir.heads[h].level, "maxpool", 2)) for h, p in out.items()])
    assert loss(out, y).item() == pytest.approx(expected.mean().item(), rel=1e-5)
    loss(out, y).backward()


def test_unknown_loss_name():
    m = skipgraph.build(SPECS / "unet.yaml", base=4, depth=2)
    with pytest.raises(ValueError, match="unknown loss"):
        L.DeepSupervisionLoss(m.ir, "dyce")


# --- label maps: K classes, logits or probabilities -------------------------------------------

def _label_map(n=2, k=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n, 1, size, size), generator=g)
    return torch.cat([labels == c for c in range(k)], 1).float()


@pytest.mark.parametrize("name", sorted(set(L.SEG_LOSSES) - {"focal_msssim_iou"}))
@pytest.mark.parametrize("k", [1, 3])
def test_logits_and_probabilities_give_the_same_loss(name, k):
    """A head without activation gives logits; the loss reads them with the stable forms and
    agrees with the same head ending in a sigmoid / softmax."""
    y = _label_map(k=k) if k > 1 else (torch.rand(2, 1, 8, 8) > 0.6).float()
    z = torch.randn(2, k, 8, 8) * 2
    probs, act = (torch.softmax(z, 1), "softmax") if k > 1 else (torch.sigmoid(z), "sigmoid")
    fn = L.SEG_LOSSES[name]
    assert fn(z, y, "none").item() == pytest.approx(fn(probs, y, act).item(), rel=1e-4, abs=1e-6)


def test_logits_keep_their_gradient_where_probabilities_saturate():
    z = torch.tensor([[[[-30.0, 30.0]]]], requires_grad=True)  # p = 1e-13 and 1 - 1e-13
    y = torch.tensor([[[[1.0, 0.0]]]])
    L.bce(z, y, "none").backward()
    assert (z.grad.abs() > 0.2).all()  # the clamped probability form would give 0 here


def test_cross_entropy_over_classes_by_hand():
    p = torch.tensor([0.7, 0.2, 0.1]).view(1, 3, 1, 1)
    y = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    assert L.cross_entropy(p, y, "softmax").item() == pytest.approx(-math.log(0.2), rel=1e-6)
    # a max-pooled target naming two classes splits the target evenly
    y2 = torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1, 1)
    hand = -(math.log(0.7) + math.log(0.2)) / 2
    assert L.cross_entropy(p, y2, "softmax").item() == pytest.approx(hand, rel=1e-6)


def test_soft_dice_is_the_mean_over_classes():
    y = _label_map()
    p = torch.softmax(torch.randn(2, 3, 8, 8), 1)
    per_class = [L.soft_dice(p[:, c:c + 1], y[:, c:c + 1]) for c in range(3)]
    assert L.soft_dice(p, y, "softmax").item() == pytest.approx(
        sum(per_class).item() / 3, rel=1e-6)


@pytest.mark.parametrize("k", [1, 3])
def test_dice_ce_equals_monai(k):
    monai_losses = pytest.importorskip("monai.losses")
    y = _label_map(k=k) if k > 1 else (torch.rand(2, 1, 8, 8) > 0.6).float()
    z = torch.randn(2, k, 8, 8)
    peer = monai_losses.DiceCELoss(softmax=k > 1, sigmoid=k == 1)
    assert L.dice_ce(z, y, "none").item() == pytest.approx(peer(z, y).item(), rel=1e-5)


def test_lovasz_softmax_is_zero_for_perfect_predictions_and_positive_otherwise():
    y = _label_map()
    assert L.lovasz_hinge(y, y, "softmax").item() == pytest.approx(0, abs=1e-6)
    assert L.lovasz_hinge(torch.softmax(torch.randn(2, 3, 8, 8), 1), y, "softmax").item() > 0.1


def test_cgm_target_is_any_foreground_class():
    y = _label_map()
    y[1] = 0
    y[1, 0] = 1  # image 1: background only
    probs = torch.tensor([[0.2, 0.8], [0.7, 0.3]])
    hand = -(math.log(0.8) + math.log(0.8) + math.log(0.7) + math.log(0.7)) / 4
    assert L.cgm_bce(probs, y).item() == pytest.approx(hand, rel=1e-6)


def test_deep_supervision_with_label_maps_pools_each_class():
    m = skipgraph.build(SPECS / "unet_pp.yaml", base=4, depth=2, ds=True, classes=3).train()
    assert {h.activation for h in m.ir.heads.values()} == {"softmax"}
    y = _label_map(size=16)
    out = m(torch.randn(2, 1, 16, 16))
    loss = L.loss_for(m)(out, y)
    assert loss.item() == pytest.approx(sum(L.bce_dice(o, y, "softmax") for o in out.values())
                                        .item(), rel=1e-6)
    pooled = L.resize_target(y, 2, "maxpool", 2)
    assert pooled.shape == (2, 3, 8, 8) and (pooled.sum(1) >= 1).all()

"""A zoo spec in your own plain-PyTorch training loop, with the spec's loss and deep supervision.

``skipgraph.build("unet_pp", ds=True)`` is UNet++ with heads on X[0,1..4]. In training mode the
model returns every head (a dict ``{"X[0,1]": (N, 1, H, W), ...}``, sigmoid probabilities);
``skipgraph.losses.loss_for(model)`` is the loss the spec declares (BCE + soft Dice per head,
summed: UNet++ Eq. 2), so deep supervision trains every head. In eval mode the model returns one
tensor ``(N, 1, H, W)``: the mean of the four heads (the spec's ``output: ensemble``), and
``model.prune("X[0,2]")`` is the smaller UNet++ L2 that shares the trained weights.

    python examples/plain_pytorch.py            # a minute on a CPU
    python examples/plain_pytorch.py --steps 20 --base 4 --size 32
"""
from __future__ import annotations

import argparse

import torch

import skipgraph
from skipgraph.losses import loss_for
from toy_data import disks


def dice(pred: torch.Tensor, label: torch.Tensor) -> float:
    """Dice of a 0.5-thresholded probability map against a 0/1 label map."""
    p = (pred > 0.5).float()
    return float(2 * (p * label).sum() / (p.sum() + label.sum()).clamp(min=1))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--base", type=int, default=8, help="width of level 0 (paper: 32)")
    ap.add_argument("--size", type=int, default=64, help="image side, a multiple of 16")
    args = ap.parse_args(argv)

    model = skipgraph.build("unet_pp", ds=True, base=args.base, seed=0)
    criterion = loss_for(model)          # the spec's `loss:` section, over every head
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = disks(16, args.size, seed=0)
    batches = torch.Generator().manual_seed(0)  # the same batches on every run

    model.train()
    losses = []
    for step in range(args.steps):
        batch = torch.randint(0, len(images), (4,), generator=batches)
        heads = model(images[batch])     # {"X[0,1]": ..., ..., "X[0,4]": ...}
        loss = criterion(heads, labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}  ({len(heads)} heads)")

    test_images, test_labels = disks(4, args.size, seed=1)
    model.eval()
    with torch.no_grad():
        ensemble = model(test_images)                    # mean of the 4 heads
        pruned = model.prune("X[0,2]")(test_images)      # UNet++ L2, same weights
    result = {"model": model, "losses": losses, "heads": sorted(heads),
              "dice_ensemble": dice(ensemble, test_labels),
              "dice_pruned_L2": dice(pruned, test_labels)}
    print(f"test Dice: ensemble {result['dice_ensemble']:.3f}, pruned to X[0,2] "
          f"{result['dice_pruned_L2']:.3f}")
    return result


if __name__ == "__main__":
    main()

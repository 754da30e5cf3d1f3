"""A skipgraph model inside MONAI: DiceCELoss for training, sliding-window inference over an
image larger than the training crop.

The model is the zoo's U-Net with two-class logits (``unet_logits.yaml`` extends ``unet``). It
trains on random ``crop x crop`` patches with ``monai.losses.DiceCELoss(to_onehot_y=True,
softmax=True)`` (label maps ``(N, 1, H, W)`` of class indices), then
``monai.inferers.sliding_window_inference`` segments a whole ``4 crop x 4 crop`` image patch by
patch (``roi_size = crop``, overlap 0.25, Gaussian blending): the model only ever sees inputs of
the training size. MONAI's ``DiceMetric`` scores the result. Needs ``pip install
"skipgraph[monai]"``.

    python examples/monai_sliding_window.py
    python examples/monai_sliding_window.py --steps 20 --base 4 --crop 32
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric

import skipgraph
from toy_data import disks

SPEC = Path(__file__).resolve().parent / "unet_logits.yaml"


def random_crops(images: torch.Tensor, labels: torch.Tensor, crop: int, n: int,
                 g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random ``crop x crop`` patches (the same window from an image and its label map)."""
    picks = []
    for _ in range(n):
        k = int(torch.randint(len(images), (1,), generator=g))
        y0, x0 = (int(v) for v in torch.randint(images.shape[-1] - crop + 1, (2,), generator=g))
        picks.append((images[k, :, y0:y0 + crop, x0:x0 + crop],
                      labels[k, :, y0:y0 + crop, x0:x0 + crop]))
    return torch.stack([p[0] for p in picks]), torch.stack([p[1] for p in picks])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--crop", type=int, default=48, help="training patch side = inference "
                    "window (a multiple of 2**depth)")
    args = ap.parse_args(argv)

    model = skipgraph.build(SPEC, base=args.base, depth=args.depth, seed=0)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    size = 4 * args.crop
    images, labels = disks(8, size, seed=0)
    g = torch.Generator().manual_seed(0)

    model.train()
    losses = []
    for step in range(args.steps):
        x, y = random_crops(images, labels, args.crop, 4, g)
        loss = loss_fn(model(x), y)      # logits (N, 2, crop, crop) vs labels (N, 1, crop, crop)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  DiceCE {loss.item():.4f}")

    image, label = disks(1, size, seed=1)
    model.eval()
    with torch.no_grad():
        logits = sliding_window_inference(image, roi_size=(args.crop, args.crop), sw_batch_size=4,
                                          predictor=model, overlap=0.25, mode="gaussian")
    prediction = logits.argmax(dim=1, keepdim=True)      # (1, 1, size, size) class indices
    metric = DiceMetric(include_background=False)
    metric(torch.nn.functional.one_hot(prediction[:, 0], 2).movedim(-1, 1),
           torch.nn.functional.one_hot(label[:, 0].long(), 2).movedim(-1, 1))
    result = {"losses": losses, "logits_shape": tuple(logits.shape),
              "dice": float(metric.aggregate())}
    print(f"{size}x{size} image in {args.crop}x{args.crop} windows -> logits "
          f"{result['logits_shape']}, foreground Dice {result['dice']:.3f}")
    return result


if __name__ == "__main__":
    main()

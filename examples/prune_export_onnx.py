"""Prune a deeply supervised checkpoint, export it to ONNX and run it with onnxruntime.

A UNet++ with deep supervision (``ds=True``, heads on X[0,1..4]) is trained briefly and saved
with ``skipgraph.save_checkpoint``; ``skipgraph.load_checkpoint`` rebuilds it from the file alone.
``model.prune("X[0,2]")`` keeps only that head's ancestors (UNet++ L2, the trained weights
shared, no copy) and is exported with ``skipgraph.export.export_onnx``: dynamic batch and spatial
sizes (multiples of the pruned model's total stride, 4). onnxruntime then runs the file on an input
of another size than the export's, and its output ``(N, 1, H, W)`` matches PyTorch's eval output
to float32 rounding. Needs ``pip install "skipgraph[export]"``.

    python examples/prune_export_onnx.py --out /tmp/sg_example
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import skipgraph
from skipgraph.export import export_onnx
from skipgraph.losses import loss_for
from toy_data import disks


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/example_onnx"))
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--head", default="X[0,2]", help="the head to keep (UNet++ L1..L4)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    # a deeply supervised checkpoint (here trained for a few steps on toy data)
    model = skipgraph.build("unet_pp", ds=True, base=args.base, seed=0)
    criterion, optimiser = loss_for(model), torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = disks(8, 32, seed=0)
    model.train()
    for _ in range(args.steps):
        loss = criterion(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    skipgraph.save_checkpoint(model, args.out / "unet_pp_ds.pt")

    # prune the checkpoint to one head: UNet++ L2 with the weights trained in the full model
    full = skipgraph.load_checkpoint(args.out / "unet_pp_ds.pt")
    small = full.prune(args.head).eval()
    onnx_path = args.out / "unet_pp_L2.onnx"
    export_onnx(small, onnx_path)
    print(f"pruned to {args.head}: {count(small):,} of {count(full):,} parameters; "
          f"wrote {onnx_path}")

    # onnxruntime on an input size the export never saw
    x = disks(2, 48, seed=1)[0]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch_out = small(x).numpy()
    diff = float(np.abs(onnx_out - torch_out).max())
    print(f"onnxruntime output {onnx_out.shape}, max |onnx - torch| = {diff:.2e}")
    return {"full": full, "small": small, "onnx_path": onnx_path,
            "onnx_shape": tuple(onnx_out.shape), "max_abs_diff": diff}


if __name__ == "__main__":
    main()

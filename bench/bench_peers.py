"""Each exact-peer spec against the peer's own class holding the same weights: forward (no
grad) and a training step (forward + backward of every output), timed interleaved in one process.

    python bench/bench_peers.py [--size2d 128] [--size3d 48] [--batch 2] [--reps 7]
                                [--device cpu|cuda|all] [--only SPEC ...] [--label TEXT]
                                [--out F.json]

Peers (CONFIGS): MONAI's BasicUNet and BasicUNetPlusPlus (deep supervision), UNet, DynUNet,
SegResNet, SegResNetDS, VNet, UNETR and SwinUNETR (``img_size`` set to the input size),
nnU-Net's PlainConvUNet, ResidualEncoderUNet and ResidualUNet (dynamic_network_architectures),
smp's Unet, UnetPlusPlus, Linknet, FPN and DeepLabV3Plus, in 2D and 3D at the spec's defaults
(the nnU-Net spec in 3D with nnU-Net's 3D width cap of 320). Outputs are compared before timing (max |difference|
reported). ``ratio`` is skipgraph / peer, the median of per-round ratios
(skipgraph.compile.timing): below 1, skipgraph is faster. A peer whose package is missing is
skipped with a note.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import skipgraph  # noqa: E402
from skipgraph.compile.timing import (bench_devices, forward_fn, interleaved,  # noqa: E402
                                      median, paired_ratio, save_results, train_step_fn)
from skipgraph.integrations.peers import PEERS, build_peer, load_peer_weights  # noqa: E402
from skipgraph.integrations.peers_monai import peer_outputs  # noqa: E402

# (spec, params, label); sizes come from the command line by dims. A row is all a spec with an
# entry in skipgraph.integrations.peers.PEERS (its peer's constructor and weight-key map) needs.
CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("monai_basic_unet", {"dims": 2}, "BasicUNet 2D"),
    ("monai_basic_unet", {"dims": 3}, "BasicUNet 3D"),
    ("monai_basic_unetpp", {"dims": 2, "ds": True}, "BasicUNet++ 2D, DS"),
    ("monai_basic_unetpp", {"dims": 3, "ds": True}, "BasicUNet++ 3D, DS"),
    ("nnunet_plain", {"dims": 2}, "PlainConvUNet 2D, 6 stages, DS"),
    ("nnunet_plain", {"dims": 3, "stages": 5, "max_width": 320}, "PlainConvUNet 3D, 5 stages, DS"),
    ("nnunet_resenc", {"dims": 2}, "ResidualEncoderUNet 2D, 6 stages, DS"),
    ("resnet_unet", {}, "smp Unet, ResNet-34"),
    ("resnet_unet", {"decoder": "unet_pp"}, "smp UnetPlusPlus, ResNet-34"),
    ("monai_unet", {"dims": 2}, "MONAI UNet 2D, num_res_units=2"),
    ("monai_unet", {"dims": 2, "res_units": 0}, "MONAI UNet 2D, num_res_units=0"),
    ("monai_unet", {"dims": 3}, "MONAI UNet 3D, num_res_units=2"),
    ("monai_dynunet", {"dims": 2}, "MONAI DynUNet 2D, 5 stages"),
    ("monai_dynunet", {"dims": 3, "res_block": True, "ds": True, "ds_num": 2},
     "MONAI DynUNet 3D, res_block, DS"),
    ("monai_segresnet", {"dims": 2}, "MONAI SegResNet 2D"),
    ("monai_segresnet", {"dims": 3}, "MONAI SegResNet 3D"),
    ("monai_segresnet_ds", {"dims": 2, "dsdepth": 3}, "MONAI SegResNetDS 2D, dsdepth 3"),
    ("monai_segresnet_ds", {"dims": 3}, "MONAI SegResNetDS 3D"),
    # MONAI's dropouts reproduced (edge dropout, input_dropout); the 2D peer's Dropout3d
    # layers are Dropout2d (specs/monai_vnet.yaml)
    ("monai_vnet", {"dims": 2}, "MONAI VNet 2D"),
    ("nnunet_resunet", {"dims": 2}, "ResidualUNet 2D, 6 stages, DS"),
    ("nnunet_resenc", {"dims": 2, "stages": 7, "blocks": [1, 3, 4, 6, 6, 6, 6]},
     "ResEnc L preset 2D, 7 stages, DS"),
    ("smp_linknet", {}, "smp Linknet, ResNet-34"),
    ("smp_fpn", {}, "smp FPN, ResNet-34"),
    ("smp_deeplabv3plus", {}, "smp DeepLabV3Plus, ResNet-34"),
    ("smp_manet", {}, "smp MAnet, ResNet-34"),
    ("smp_pan", {}, "smp PAN, ResNet-34"),
    ("smp_upernet", {}, "smp UPerNet, ResNet-34"),
    ("monai_unetr", {"dims": 2}, "UNETR 2D"),
    ("monai_unetr", {"dims": 3}, "UNETR 3D"),
    ("monai_swin_unetr", {"dims": 2}, "SwinUNETR 2D"),
    ("monai_swin_unetr", {"dims": 3, "feature_size": 12}, "SwinUNETR 3D, feature_size 12"),
    # FlexibleUNet takes multiples of 32 (2D only here: --size3d's default 48 is not one)
    ("monai_flexible_unet", {}, "MONAI FlexibleUNet 2D, efficientnet-b0"),
    ("monai_flexible_unet", {"encoder": "resnet34"}, "MONAI FlexibleUNet 2D, resnet34"),
]


def make_pair(spec: str, params: dict, size2d: int, size3d: int, batch: int,
              device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    """The compiled spec, its peer holding the same weights, and an input
    ``(batch, C, *[size] * dims)`` (size by dims; a spec with ``img_size`` gets it set to the
    input size, since a position table fixes the peer's size)."""
    path = ROOT / "specs" / f"{spec}.yaml"
    dims = params.get("dims", skipgraph.load_spec(path).params.get("dims"))
    size = size2d if dims == 2 else size3d
    if "img_size" in skipgraph.load_spec(path).params:
        params = {**params, "img_size": size}
    model = skipgraph.build(path, seed=0, **params).to(device)
    peer = build_peer(spec, model.ir.params).to(device)
    load_peer_weights(model, peer, spec)
    x = torch.randn(batch, model.ir.in_channels, *[size] * model.ir.dims, device=device)
    return model, peer, x


def bench(spec: str, params: dict, label: str, args, device: torch.device) -> list[dict]:
    model, peer, x = make_pair(spec, params, args.size2d, args.size3d, args.batch, device)
    diff = 0.0
    for training in (False, True):  # eval: the spec's output (a list where the peer lists)
        model.train(training), peer.train(training)
        # DynUNet stacks its up-sampled training heads: compared head by head; one seed
        # gives the same dropout draws in both (smp's FPN, DeepLabV3+, MONAI's VNet)
        with torch.no_grad():
            torch.manual_seed(0)
            ours = peer_outputs(spec, model, model(x))
            torch.manual_seed(0)
            theirs = peer_outputs(spec, model, peer(x), peer=True)
        if len(ours) != len(theirs):
            raise ValueError(f"{label}: {len(ours)} outputs vs the peer's {len(theirs)} "
                             f"({'training' if training else 'eval'} mode)")
        diff = max([diff] + [(a - b).abs().max().item() for a, b in zip(ours, theirs)])
    rows = []
    for task, make in (("forward", forward_fn), ("train step", train_step_fn)):
        fns = {"skipgraph": make(model, x), "peer": make(peer, x)}
        times = interleaved(fns, args.reps, device)
        row = {"spec": spec, "label": label, "peer": PEERS[spec].label, "device": device.type,
               "input": list(x.shape), "task": task, "skipgraph": median(times["skipgraph"]),
               "peer_s": median(times["peer"]),
               "ratio": paired_ratio(times["skipgraph"], times["peer"]), "max_abs_diff": diff}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| network | device | input | task | skipgraph s | peer s | ratio | max abs diff |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['device']} | {'x'.join(map(str, r['input']))} | "
                     f"{r['task']} | {r['skipgraph']:.3f} | {r['peer_s']:.3f} | "
                     f"{r['ratio']:.2f} | {r['max_abs_diff']:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size2d", type=int, default=128)
    p.add_argument("--size3d", type=int, default=48)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    p.add_argument("--only", nargs="*", help="spec names to run (default: all)")
    p.add_argument("--label", help="run only the rows whose label contains this text")
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    devices = bench_devices(args.device)
    rows: list[dict] = []
    for device in devices:
        for spec, params, label in CONFIGS:
            if args.only and spec not in args.only:
                continue
            if args.label and args.label not in label:
                continue
            try:
                rows += bench(spec, params, label, args, device)
            except ImportError as exc:
                print(f"skipped {label}: {exc}", file=sys.stderr)
    print(table(rows))
    save_results(args.out, rows, args)


if __name__ == "__main__":
    main()

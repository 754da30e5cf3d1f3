"""``skipgraph nnunet plans | convert | train | predict | trainer-dir``: nnU-Net v2 (see docs/nnunet.md).
Parsing and ``plans`` import no torch; ``train`` / ``predict`` run nnU-Net's entry points."""
from __future__ import annotations

import argparse
import json
from typing import Callable

__all__ = ["add_commands"]


def cmd_plans(args: argparse.Namespace) -> int:
    from ..spec.loader import parse_overrides
    from ..integrations.nnunet import TRAINER, trainer_dir
    from ..integrations.nnunet.plans import write_plans
    path, plans, used = write_plans(args.plans, args.spec, parse_overrides(args.set), args.name,
                                    args.configurations)
    print(f"wrote {path} ({plans.get('dataset_name', '?')}, spec {args.spec})")
    for cname, params in used.items():
        print(f"  {cname}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items()))
    dataset = plans.get("dataset_name", "DATASET")
    print("train (each configuration, folds 0-4), then predict:")
    for cname in used:
        print(f"  skipgraph nnunet train {dataset} {cname} 0 -p {args.name} -tr {TRAINER}")
    first = next(iter(used))
    print(f"  skipgraph nnunet predict -i INPUT -o OUTPUT -d {dataset} -c {first} -f 0 "
          f"-p {args.name} -tr {TRAINER}")
    print(f"(or nnUNetv2_train / nnUNetv2_predict with the same arguments and "
          f"nnUNet_extTrainer={trainer_dir()})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..integrations.nnunet.entry import train
    return train(args.args)


def cmd_predict(args: argparse.Namespace) -> int:
    from ..integrations.nnunet.entry import predict
    return predict(args.args)


def cmd_convert(args: argparse.Namespace) -> int:
    from ..integrations.nnunet.dataset import msd_labels, msd_split, msd_to_raw
    train, test = msd_split(args.msd, args.split)
    out = msd_to_raw(args.msd, args.raw, args.id, args.name, msd_labels(args.msd, args.labels),
                     train, test, channel=args.channel)
    print(f"wrote {out}: {len(train)} training cases, {len(test)} test cases (imagesTs)")
    return 0


def cmd_trainer_dir(args: argparse.Namespace) -> int:
    from ..integrations.nnunet import trainer_dir
    print(trainer_dir())
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("nnunet", lambda a: 2, "train specs with nnU-Net v2 (see docs/nnunet.md)", spec=False)
    sub = p.add_subparsers(dest="nnunet_command", required=True)
    pl = sub.add_parser("plans", help="write a plans identifier whose configurations use a spec",
                        description="Copy an nnU-Net v2 plans file so that its configurations "
                        "train SPEC; print the nnUNetv2_train commands.")
    pl.add_argument("plans", metavar="PLANS.json")
    pl.add_argument("--spec", required=True, help="spec file, or a zoo name such as unet_pp")
    pl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a param (repeatable; wins over the plans' values)")
    pl.add_argument("--name", required=True, help="the new plans identifier (-p of nnU-Net)")
    pl.add_argument("--configurations", "-c", nargs="+", metavar="CONFIG",
                    help="only these configurations (default: all with an architecture)")
    pl.set_defaults(fn=cmd_plans)
    for name, fn, tool in (("train", cmd_train, "nnUNetv2_train"),
                           ("predict", cmd_predict, "nnUNetv2_predict")):
        # prefix_chars="+": every argument, `-i` and `-h` included, goes to nnU-Net's parser
        sp = sub.add_parser(name, help=f"{tool} with skipgraph's trainers known", add_help=False,
                            prefix_chars="+",
                            description=f"Run nnU-Net's {tool} with these arguments (see "
                            f"`{tool} -h`); skipgraph's trainer names resolve directly.")
        sp.add_argument("args", nargs=argparse.REMAINDER)
        sp.set_defaults(fn=fn)
    cv = sub.add_parser("convert", help="an MSD folder as an nnU-Net raw dataset",
                        description="Copy an MSD-layout folder (imagesTr/, labelsTr/) into "
                        "RAW/DatasetXXX_NAME in nnU-Net v2's raw layout (images _0000, integer "
                        "labels, dataset.json), checking every label map first.")
    cv.add_argument("msd", metavar="MSD_DIR")
    cv.add_argument("--raw", required=True, help="nnU-Net's raw folder ($nnUNet_raw)")
    cv.add_argument("--id", type=int, required=True, help="the dataset id (e.g. 4)")
    cv.add_argument("--name", required=True, help="the dataset name (e.g. Hippocampus)")
    cv.add_argument("--labels", nargs="+", default=[], metavar="NAME=VALUE",
                    help="label names (default: MSD_DIR/dataset.json's labels)")
    cv.add_argument("--split", help="split.json: train + val become training cases, test the "
                    "imagesTs cases (default: MSD_DIR/split.json, else every case trains)")
    cv.add_argument("--channel", default="MRI", help="the channel's name (default: MRI)")
    cv.set_defaults(fn=cmd_convert)
    td = sub.add_parser("trainer-dir", help="print the folder for nnUNet_extTrainer")
    td.set_defaults(fn=cmd_trainer_dir)

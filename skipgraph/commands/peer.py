"""``skipgraph import``: a peer's trained weights (nnU-Net, MONAI, smp) as a skipgraph
checkpoint; ``skipgraph export CKPT --peer ...`` (in :mod:`.build`) writes them back through
:func:`export_to_peer`. Parsing imports no torch."""
from __future__ import annotations

import argparse
from typing import Callable

__all__ = ["add_commands", "export_to_peer"]


def cmd_import(args: argparse.Namespace) -> int:
    from ..compile.summary import count_params
    from ..integrations.importing import import_peer
    from ..spec.loader import parse_overrides
    model, info = import_peer(args.checkpoint, args.peer, args.output, spec=args.spec,
                              overrides=parse_overrides(args.set), plans=args.plans,
                              configuration=args.configuration)
    where = f", configuration {info['configuration']}" if "configuration" in info else ""
    print(f"wrote {args.output}: {info['label']}{where} as {info['spec']} "
          f"({count_params(model):,} parameters, heads: {', '.join(model.ir.heads)})")
    return 0


def export_to_peer(args: argparse.Namespace) -> int:
    """``skipgraph export CKPT --peer P -o OUT``."""
    from ..errors import Diagnostic, SpecError
    from ..integrations.importing import export_peer
    if not args.output:
        raise SpecError([Diagnostic("missing-key", "export --peer needs -o OUT (.pt/.pth/"
                                    ".safetensors, or a folder for an nnU-Net model)")])
    written = export_peer(args.spec, args.peer, args.output)
    print("wrote " + ", ".join(map(str, written)))
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("import", cmd_import, "write a skipgraph checkpoint from a peer's trained weights "
            "(nnU-Net checkpoint_final.pth, MONAI or smp state_dict)", spec=False)
    p.add_argument("checkpoint", metavar="PEER_CHECKPOINT",
                   help="the peer's file (.pth/.pt, or .safetensors)")
    p.add_argument("--peer", required=True, metavar="nnunet|monai|smp",
                   help="the peer family (or a package / zoo spec that has a peer)")
    p.add_argument("--spec", help="the zoo spec, where the family has several (default: the "
                   "one whose peer has exactly the file's tensors)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a spec param the weights do not show (repeatable; wins over "
                   "inferred and planned values)")
    p.add_argument("--plans", metavar="PLANS.json", help="nnU-Net: the plans (default: those "
                   "in the checkpoint's init_args)")
    p.add_argument("--configuration", "-c", metavar="CONFIG", help="nnU-Net: the "
                   "configuration (default: the checkpoint's)")
    p.add_argument("-o", "--output", required=True, metavar="CKPT")

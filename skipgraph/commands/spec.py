"""Commands on a spec that never import torch: check, expand, zoo, schema, blocks."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from .common import load_ir

__all__ = ["add_commands"]


def cmd_check(args: argparse.Namespace) -> int:
    ir = load_ir(args)
    print(f"{args.spec}: ok ({ir.name}: {ir.graph.number_of_nodes() - 1} nodes, "
          f"{ir.graph.number_of_edges()} edges, {len(ir.heads)} head(s))")
    return 0


def cmd_expand(args: argparse.Namespace) -> int:
    ir = load_ir(args)
    print(json.dumps(ir.to_dict(), indent=1) if args.json else str(ir))
    return 0



def describe(path: Path) -> str:
    """``name: description`` of a spec file, as ``skipgraph zoo`` lists it."""
    from ..spec.yaml_source import load_yaml_file
    data = load_yaml_file(str(path)).data
    if not isinstance(data, dict):
        return ""
    return f"{data.get('name', path.stem)}: {data.get('description', '')}"


def cmd_zoo(args: argparse.Namespace) -> int:
    from ..zoo import zoo_specs
    specs = zoo_specs()
    width = max((len(n) for n in specs), default=0)
    for name, path in specs.items():
        print(f"{name.ljust(width)}  {describe(path)}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from ..spec.json_schema import spec_json_schema
    print(json.dumps(spec_json_schema(), indent=1))
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    from ..blocks import list_blocks
    for b in list_blocks(args.pattern):
        print(f"{b.name}: {b.description}  ({b.origin})")
    return 0



def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    add("check", cmd_check, "validate a spec (exit 0 if valid, 2 if not)")
    add("expand", cmd_expand, "print the explicit nodes and edges").add_argument(
        "--json", action="store_true")
    add("zoo", cmd_zoo, "list the shipped specs", spec=False)
    add("schema", cmd_schema, "print the JSON Schema of the spec format", spec=False)
    add("blocks", cmd_blocks, "list registered block types", spec=False).add_argument(
        "pattern", nargs="?", default="*")

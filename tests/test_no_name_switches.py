"""The stages hold no if-chains on op, head, block, norm, activation or backbone-provider names:
every rule of a registered entry lives in its settings model or builder (skipgraph.resampling,
skipgraph.heads, skipgraph.blocks, skipgraph.backbone_registry)."""
from __future__ import annotations

import ast
from pathlib import Path

from skipgraph.backbone_registry import BACKBONE_PROVIDERS
from skipgraph.blocks.options import ACTS, NORMS
from skipgraph.blocks.registry import BLOCKS
from skipgraph.heads import HEADS
from skipgraph.resampling import RESAMPLE

PKG = Path(__file__).resolve().parent.parent / "skipgraph"
SCANNED = [PKG / d for d in ("compile", "render", "export", "graph", "train")] + \
    [PKG / "losses.py"]


def _strings(node: ast.AST) -> list[str]:
    """String constants a comparison operand holds (itself, or the items of a literal
    tuple/list/set/dict it is)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _strings(e)]
    if isinstance(node, ast.Dict):
        return [s for k in node.keys if k is not None for s in _strings(k)]
    return []


def name_comparisons(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) for every ``==``/``!=``/``in``/``not in``/``match`` against a name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                found += [(node.lineno, s) for s in _strings(operand) if s in names]
        elif isinstance(node, ast.match_case):
            for sub in ast.walk(node.pattern):
                if isinstance(sub, ast.MatchValue):
                    found += [(node.pattern.lineno, s) for s in _strings(sub.value)
                              if s in names]
    return found


def test_the_checker_catches_a_name_switch():
    names = {"maxpool", "cgm", "backbone"}
    src = ("if r.op == 'maxpool': pass\nif h.type in ('seg', 'cgm'): pass\n"
           "match t:\n    case 'cgm': pass\nif mode == 'none': pass\n"
           "if node.block.type == 'backbone': pass\n")
    assert name_comparisons(src, names) == [(1, "maxpool"), (2, "cgm"), (4, "cgm"),
                                            (6, "backbone")]


def test_stages_never_compare_against_registered_names():
    # "none" (no norm / no activation) is also a word of other settings (`gating`, `init`)
    names = (set(RESAMPLE.names()) | set(HEADS.names()) | set(BLOCKS.names())
             | set(NORMS.names()) | set(ACTS.names()) | set(BACKBONE_PROVIDERS.names())) - {"none"}
    assert {"maxpool", "transpose", "pixelshuffle", "seg", "cgm", "conv", "resblock",
            "backbone", "identity", "batch", "relu", "timm"} <= names
    files = [f for p in SCANNED for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    assert len(files) > 20
    offences = [f"{f.relative_to(PKG.parent)}:{line}: compares against `{name}`"
                for f in files for line, name in name_comparisons(f.read_text(), names)]
    assert not offences, "\n".join(offences)

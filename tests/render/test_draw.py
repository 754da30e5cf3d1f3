"""Geometry and styles read back from graphviz's own layout (`-Tjson`)."""
import shutil
import subprocess
import sys

import pytest

from skipgraph import load_ir
from skipgraph.cli import main
from skipgraph.render import DrawOptions, draw, layout_json
from skipgraph.render.loops import folded_view
from skipgraph.render.style import EDGE_STYLES
from tests.conftest import ROOT, SPECS, ZOO

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` missing")


def _layout(ir, **opts):
    data = layout_json(draw(ir, DrawOptions(**opts)))
    nodes = {o["name"]: o for o in data["objects"]}
    pos = {name: tuple(map(float, o["pos"].split(","))) for name, o in nodes.items()
           if "pos" in o}
    edges = [(data["objects"][e["tail"]]["name"], data["objects"][e["head"]]["name"], e)
             for e in data.get("edges", [])]
    return nodes, pos, edges


@needs_dot
@pytest.mark.parametrize("spec", ZOO, ids=[p.stem for p in ZOO])
def test_grid_geometry(spec):
    ir = folded_view(load_ir(spec))
    _, pos, _ = _layout(ir)
    grid = {(n.level, n.column): pos[n.name] for n in ir.nodes() if not n.is_input}
    for (level, col), (x, y) in grid.items():
        if (level, col - 1) in grid:   # right of its left neighbour on the same level
            assert x > grid[(level, col - 1)][0]
        for (level2, _), (_, y2) in grid.items():  # below every node of the level above
            if level2 == level - 1:
                assert y < y2
    # no two nodes overlap: centres at least a node width apart (0.62in = 44.6pt)
    pts = list(pos.values())
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) > 44 for k, a in enumerate(pts)
               for b in pts[k + 1:])


@needs_dot
@pytest.mark.parametrize("spec", ZOO, ids=[p.stem for p in ZOO])
def test_every_edge_family_drawn_with_its_style_and_legend_lists_exactly_the_kinds(spec):
    ir = load_ir(spec, ds=True) if "ds" in load_ir(spec).params else load_ir(spec)
    nodes, _, edges = _layout(ir)
    ir = folded_view(ir)  # what a loop's drawing shows
    by_pair = {(t, h): e for t, h, e in edges}
    for e in ir.edges():
        drawn = by_pair[(ir.node(e.src).name, ir.node(e.dst).name)]
        st = EDGE_STYLES[e.kind]
        assert drawn["color"] == st.color and drawn.get("style", "solid") == st.style
        assert f"family-{e.family}" in drawn["class"]
    legend = nodes["legend"]["label"]
    used = {e.kind for e in ir.edges()} | {"head"}
    for kind, st in EDGE_STYLES.items():
        assert (st.label in legend) == (kind in used), kind


def test_prune_greys_what_pruning_removes():
    ir = load_ir(SPECS / "unet_pp.yaml", ds=True)
    src = draw(ir, DrawOptions(prune="X[0,2]")).source
    keep = ir.ancestors(["X[0,2]"])
    for node in ir.nodes():
        line = next(l for l in src.splitlines() if l.strip().startswith(node.name + " "))
        assert ("#b8b8b8" in line) == (node.id not in keep), node.id
    assert "removed by pruning" in src


def test_detail_adds_block_and_shape():
    ir = load_ir(SPECS / "unet.yaml")
    src = draw(ir, DrawOptions(detail=True, input_shape=[1, 1, 256, 256])).source
    assert "512x16x16" in src and "conv" in src


def test_render_does_not_import_torch(tmp_path):
    code = ("import sys; from skipgraph.cli import main; "
            f"rc = main(['render', 'unet_pp', '-o', r'{tmp_path / 'u.dot'}']); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "0 False", out.stderr


def test_dot_output_needs_no_binary_and_images_fall_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["render", "unet", "-o", str(tmp_path / "u.dot")]) == 0
    assert (tmp_path / "u.dot").read_text().startswith("digraph")
    capsys.readouterr()
    assert main(["render", "unet", "-o", str(tmp_path / "v.svg")]) == 2  # not what was asked
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'v.svg'}" in err and "apt-get install -y graphviz" in err
    assert f"wrote the graph's source to {tmp_path / 'v.dot'} instead" in err
    assert (tmp_path / "v.dot").exists() and not (tmp_path / "v.svg").exists()


@needs_dot
@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_image_formats(tmp_path, fmt, capsys):
    out = tmp_path / f"u.{fmt}"
    assert main(["render", "unet_pp", "--set", "depth=2", "-o", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_broken_spec_renders_with_problems_marked(tmp_path, capsys):
    from tests.conftest import TINY_SPEC
    spec = tmp_path / "broken.yaml"
    spec.write_text(TINY_SPEC.replace('  dense:   {from: "X[i,k]", to: "X[i,j]", for: {k: '
                                      '0..j-1}, kind: dense}\n', ""))
    out = tmp_path / "b.dot"
    assert main(["render", str(spec), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "dead-node" in err and "X[0,1]" in err
    line = next(l for l in out.read_text().splitlines() if l.strip().startswith("X0_1 "))
    assert "#d62728" in line


def test_unknown_prune_head(capsys):
    assert main(["render", "unet_pp", "--prune", "X[0,9]", "-o", "/tmp/x.dot"]) == 2


@needs_dot
def test_unrolled_loop_keeps_encoder_and_decoder_tints():
    """Iterations drawn to the right keep their role's colour (encoder nodes stay encoder-blue)."""
    from skipgraph.render.style import NODE_FILL
    ir = load_ir(SPECS / "bionet.yaml", base=2, l=2, t=3)
    nodes, _, _ = _layout(ir, unroll=True)
    fill = {name: o.get("fillcolor") for name, o in nodes.items()}
    for step in ("", "_t2", "_t3"):
        assert fill[f"E0{step}"] == NODE_FILL[0] and fill[f"D0{step}"] == NODE_FILL[1]


def test_a_resized_head_is_labelled_with_its_per_axis_factor():
    """UNet3+'s deep heads are up-sampled to full size by their level's factor: on an
    anisotropic grid (depth kept at the first level) that is x(2,4,4) at level 2, not x4."""
    from skipgraph.graph import build_ir
    from skipgraph.spec import load_spec_text
    text = ("skipgraph: 1\nname: aniso_unet3p\nextends: unet3p\ndims: 3\n"
            "strides: [[1, 2, 2]]\nparams: {ds: true, base: 4}\n")
    ir = build_ir(load_spec_text(text, file=str(SPECS / "aniso.yaml")))
    src = draw(ir, DrawOptions()).source
    labels = {h.level: h.settings.drawing(h.level, h.level_scale)[1] for h in ir.heads.values()
              if h.pixelwise}
    assert "up x(2,4,4)" in labels[2] and "up x(4,8,8)" in labels[3]
    assert "up x(2,4,4)" in src and "up x4<" not in src
    assert ir.heads[next(h for h in ir.heads if ir.heads[h].level == 1)].settings.drawing(
        1, (1, 2, 2))[1][-1] == "up x(1,2,2)"


@needs_dot
@pytest.mark.parametrize("spec", ZOO, ids=[p.stem for p in ZOO])
def test_neato_routes_every_edge_around_the_nodes(spec):
    """A legend (or anything) touching a node makes neato drop spline routing for the whole
    drawing ("falling back to straight line edges"): skips would run behind nodes."""
    done = subprocess.run(["dot", "-Tjson"], input=draw(load_ir(spec)).source.encode(),
                          capture_output=True, check=True)
    assert b"falling back to straight line" not in done.stderr, done.stderr.decode()


def _bezier_points(edge, steps=12):
    """Points along the edge's drawn splines (graphviz's `b` ops: cubic Bezier pieces)."""
    out = []
    for op in edge.get("_draw_", []):
        pts = op.get("points", [])
        for k in range(0, len(pts) - 3, 3):
            p0, p1, p2, p3 = pts[k:k + 4]
            for s in range(steps + 1):
                t = s / steps
                out.append(tuple((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b
                                 + 3 * (1 - t) * t ** 2 * c + t ** 3 * d
                                 for a, b, c, d in zip(p0, p1, p2, p3)))
    return out


@needs_dot
def test_swin_unetr_skips_to_the_stage_norms_pass_no_swin_node():
    """P / M[l] -> N[l] run along a level past its Swin blocks: drawn around, not behind them."""
    ir = load_ir(SPECS / "monai_swin_unetr.yaml")
    nodes, pos, edges = _layout(ir)
    radius = {name: float(o["width"]) * 72 / 2 for name, o in nodes.items() if "width" in o}
    swin = [n.name for n in ir.nodes() if n.family == "S"]
    checked = 0
    for tail, head, e in edges:
        if not head.startswith("N"):
            continue
        checked += 1
        for x, y in _bezier_points(e):
            for s in swin:
                sx, sy = pos[s]
                assert (x - sx) ** 2 + (y - sy) ** 2 > radius[s] ** 2, (tail, head, s)
    assert checked == 5

"""The `view` page driven in a real headless Chromium (Debian's `chromium`, Playwright from the
`test` extra; `make setup` installs both): hover facts against `build`'s summary, pruning
against `model.prune`, an edit with a typo against `check`'s message, a fixed edit redrawing,
the static file fetching nothing. One server and one browser for the module.

Screenshots go to $SKIPGRAPH_SCREENSHOTS (default: a temporary folder)."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from skipgraph.cli import main
from skipgraph.compile import compile_ir
from skipgraph.compile.summary import count_params, summarize
from skipgraph.commands.view import ViewSession
from skipgraph.graph import build_ir
from skipgraph.graph.estimate import estimate_node_params
from skipgraph.spec import load_spec
from skipgraph.view import page_html
from skipgraph.view.server import ViewServer
from tests.conftest import SPECS

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists(
    "/usr/bin/chromium") else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SETS = ["base=4", "ds=true"]  # depth stays in the text, for the edit test
INPUT = [1, 1, 64, 64]


try:  # the page's CSP forbids eval: wait with `expect`, never with string predicates
    from playwright.sync_api import expect
except ImportError:
    expect = None


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (the `test` extra installs it)")
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed and could not be (`make setup` installs "
                    "Debian's chromium with apt-get; it needs root or sudo)")
    return sync_playwright


@pytest.fixture(scope="module")
def shots() -> Path:
    path = Path(os.environ.get("SKIPGRAPH_SCREENSHOTS") or tempfile.mkdtemp())
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("view") / "unet_pp.yaml"
    text = (SPECS / "unet_pp.yaml").read_text()
    path.write_text(text.replace("$schema=../docs/", f"$schema={SPECS.parent}/docs/"))
    return path


@pytest.fixture(scope="module")
def model(spec_file):
    return compile_ir(build_ir(load_spec(spec_file, SETS)), seed=0)


@pytest.fixture(scope="module")
def server(spec_file):
    session = ViewSession(str(spec_file), SETS)
    first = session.analyse(spec_file.read_text(), "x".join(map(str, INPUT)))
    srv = ViewServer(lambda: page_html(first, "unet++"), session.analyse, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="sg-chromium-"), executable_path=CHROMIUM, headless=True,
            args=ARGS, viewport={"width": 1400, "height": 820})
        yield context
        context.close()


@pytest.fixture
def page(browser, server):
    pg = browser.new_page()
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server.url)
    pg.wait_for_selector("#diagram svg")
    yield pg
    pg.close()
    assert not errors, errors  # the page's script raised


def _element(pg, title: str):
    """A drawn node, edge or head by its SVG title (the page keeps it as ``data-key``)."""
    return pg.locator(f'#diagram g[data-key="{title}"]').first


def _number(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def test_hover_shows_the_summary_figures(page, model, shots):
    rows = {r.id: r for r in summarize(model, INPUT).nodes}
    for node_id, title in (("X[1,1]", "X1_1"), ("X[0,3]", "X0_3")):
        _element(page, title).hover()
        expect(page.locator("#info h2")).to_have_text(node_id)
        row = rows[node_id]
        assert _number(page.inner_text('#info td[data-key="parameters"]')) == row.params
        assert _number(page.inner_text('#info td[data-key="FLOPs"]')) == row.flops > 0
        assert page.inner_text('#info td[data-key="output shape"]') == \
            "x".join(map(str, row.output_shape))
        node = model.ir.node(node_id)
        assert page.inner_text('#info td[data-key="channels"]') == \
            f"{node.in_channels} \u2192 {node.out_channels}"
        assert page.inner_text('#info td[data-key="level"]').startswith(str(node.level))
    head = rows["head X[0,2]"]
    _element(page, "out_head_X0_2").hover()
    expect(page.locator("#info h2")).to_have_text("head X[0,2]")
    assert _number(page.inner_text('#info td[data-key="parameters"]')) == head.params
    _element(page, "X2_0->X1_1").hover()  # an edge: its transposed conv's weights
    expect(page.locator("#info h2")).to_have_text("X[2,0] \u2192 X[1,1]")
    assert _number(page.inner_text('#info td[data-key="parameters"]')) == \
        count_params(model.get_submodule("up_X2_0_X1_1"))
    page.screenshot(path=str(shots / "view_hover.png"))
    # another input size: shapes and FLOPs follow (the server re-runs the summary)
    page.fill("#input", "1x1x32x32")
    page.press("#input", "Enter")
    small = {r.id: r for r in summarize(model, [1, 1, 32, 32]).nodes}["X[1,1]"]
    expect(page.locator("#totals")).to_contain_text("at 1x1x32x32")
    _element(page, "X0_0").hover()
    _element(page, "X1_1").hover()
    expect(page.locator('#info td[data-key="output shape"]')).to_have_text(
        "x".join(map(str, small.output_shape)))
    assert _number(page.inner_text('#info td[data-key="FLOPs"]')) == small.flops


def test_clicking_a_head_greys_what_pruning_removes(page, model, shots):
    small = model.prune("X[0,1]")
    kept = {model.ir.node(n).name for n in small.ir.graph.nodes}
    expected = ({model.ir.node(n).name for n in model.ir.graph.nodes} - kept) | {
        f"out_{h.name}" for h in model.ir.heads.values() if h.id != "X[0,1]"}
    _element(page, "out_head_X0_1").click()
    page.wait_for_selector("#diagram g.sg-pruned")
    greyed = set(page.eval_on_selector_all(
        "#diagram g.node.sg-pruned", "els => els.map(e => e.dataset.key)"))
    assert greyed == expected
    assert f"{count_params(small):,} of {count_params(model):,} parameters" in \
        page.inner_text("#prune-note")
    page.screenshot(path=str(shots / "view_pruned.png"))
    _element(page, "out_head_X0_1").click()  # a second click undoes it
    assert page.locator("#diagram g.sg-pruned").count() == 0


def test_an_edit_with_a_typo_shows_check_s_error_then_a_fix_redraws(page, spec_file, shots,
                                                                    capsys, tmp_path):
    original = spec_file.read_text()
    typo = original.replace("block: {type: conv,", "block: {type: cnov,", 1)
    assert typo != original
    page.fill("#spec", typo)
    page.wait_for_selector("#errors li.diag")
    shown = page.inner_text("#errors li.diag pre")
    # `check` on a file with the same text and name reports the same words and position
    spec_file.write_text(typo)
    try:
        assert main(["check", str(spec_file)] + [a for s in SETS for a in ("--set", s)]) == 2
    finally:
        spec_file.write_text(original)
    reported = capsys.readouterr().err.strip()
    assert shown.strip() == reported
    line, col = map(int, re.search(r":(\d+):(\d+): error", reported).groups())
    li = page.locator("#errors li.diag").first
    assert (int(li.get_attribute("data-line")), int(li.get_attribute("data-col"))) == (line, col)
    assert page.inner_text("#gutter .err") == str(line)
    assert "stale" in page.get_attribute("#center", "class")  # the old drawing, dimmed
    page.screenshot(path=str(shots / "view_error.png"))
    _element(page, "out_head_X0_1").click()  # the dimmed drawing still answers, once a click
    expect(page.locator("#prune-note")).to_contain_text("pruned to X[0,1]")
    _element(page, "out_head_X0_1").click()
    expect(page.locator("#diagram g.sg-pruned")).to_have_count(0)

    fixed = original.replace("depth: 4", "depth: 2", 1)  # the typo fixed, and a change
    page.fill("#spec", fixed)
    expect(page.locator("#errors li")).to_have_count(0)
    expect(page.locator("#center")).not_to_have_class(re.compile("stale"))
    expect(page.locator('#diagram g[data-key="X3_0"]')).to_have_count(0)
    titles = set(page.eval_on_selector_all("#diagram g.node", "els => els.map(e => "
                                           "e.querySelector('title').textContent)"))
    ir = build_ir(load_spec(spec_file, SETS + ["depth=2"]))  # what the edit says
    assert {ir.node(n).name for n in ir.graph.nodes} <= titles
    assert "X3_0" not in titles and "X2_0" in titles
    total = count_params(compile_ir(ir, seed=0))
    assert _number(page.inner_text("#totals").split("parameters")[0]) == total


def test_the_static_file_fetches_nothing_and_shows_the_estimate(browser, tmp_path, shots):
    out = tmp_path / "unet_pp.html"
    assert main(["render", "unet_pp", "--set", "ds=true", "-o", str(out)]) == 0
    pg = browser.new_page()
    pg.set_default_timeout(10_000)
    urls: list[str] = []
    pg.on("request", lambda r: urls.append(r.url))
    pg.goto(out.as_uri())
    pg.wait_for_selector("#diagram svg")
    assert urls == [out.as_uri()]  # no script, style, font or image from anywhere else
    _element(pg, "X2_1").hover()
    est = estimate_node_params(build_ir(load_spec("unet_pp", ["ds=true"])))
    assert _number(pg.inner_text('#info td[data-key="parameters"]')) == est["X[2,1]"]
    assert pg.get_attribute("#spec", "readonly") is not None
    assert "static file" in pg.inner_text("#notes")
    pg.screenshot(path=str(shots / "view_static.png"))
    pg.close()


def test_diff_mode_shows_what_b_adds(browser, tmp_path, shots):
    out = tmp_path / "diff.html"
    assert main(["view", "unet", "--set", "base=4", "--diff", "unet_pp", "--input",
                 "1x1x32x32", "-o", str(out)]) == 0
    pg = browser.new_page()
    pg.set_default_timeout(10_000)
    pg.goto(out.as_uri())
    expect(pg.locator("#diff-toggle")).to_have_text("diff against unet_pp")
    pg.click("#diff-toggle")
    expect(pg.locator("#diff-text")).to_contain_text("+ node X[0,1]")
    expect(pg.locator("#diffview svg")).to_be_visible()
    expect(pg.locator("#diagram")).to_be_hidden()
    pg.screenshot(path=str(shots / "view_diff.png"))
    pg.click("#diff-toggle")
    expect(pg.locator("#diagram svg")).to_be_visible()
    pg.close()

"""`skipgraph view` without a browser: the page's facts against `build`'s summary and
`model.prune`, per-node FLOPs, the server's loopback-only rule, the static file (`render -o
x.html`, torch-free), checkpoints, the notebook display, and specs that try to run code."""
from __future__ import annotations

import html
import http.client
import json
import re
import socket
import subprocess
import sys
import threading

import pytest

import skipgraph
from skipgraph.cli import main
from skipgraph.commands.view import ViewSession, figures_of
from skipgraph.compile import compile_ir
from skipgraph.compile.summary import count_params, summarize
from skipgraph.graph import build_ir
from skipgraph.graph.estimate import estimate_node_params, estimate_params
from skipgraph.spec import load_spec
from skipgraph.spec.loader import load_spec_text
from skipgraph.render import draw
from skipgraph.view import default_input_shape, page_facts, svg_of
from skipgraph.view.server import ViewServer, is_loopback
from tests.conftest import CORE, ROOT, SPECS, TINY_SPEC

SETS = ["depth=3", "base=4", "ds=true"]
SHAPE = [1, 1, 32, 32]


@pytest.fixture(scope="module")
def model():
    return compile_ir(build_ir(load_spec("unet_pp", SETS)), seed=0)


def _data(html: str) -> dict:
    tag = '<script type="application/json" id="sg-data">'
    start = html.index(tag) + len(tag)
    return json.loads(html[start:html.index("</script>", start)].replace("<\\/", "</"))


def test_facts_are_the_summary_s_figures(model):
    facts = page_facts(model.ir, SHAPE, figures_of(model, SHAPE))
    summary = summarize(model, SHAPE)
    rows = {r.id: r for r in summary.nodes}
    for node in model.ir.nodes():
        f = facts["nodes"][node.name]
        row = rows[node.id]
        assert (f["id"], f["params"], f["shape"], f["flops"]) == \
            (node.id, row.params, row.output_shape, row.flops)
        assert (f["level"], f["in_channels"], f["out_channels"]) == \
            (node.level, node.in_channels, node.out_channels)
    for head in model.ir.heads.values():
        f = facts["heads"][f"out_{head.name}"]
        assert f["params"] == rows[f"head {head.id}"].params
        small = model.prune(head.id)
        assert f["pruned_params"] == count_params(small)
        greyed = {n for n in f["removed"] if not n.startswith("out_")}
        assert greyed == {model.ir.node(n).name for n in model.ir.graph.nodes} - \
            {model.ir.node(n).name for n in small.ir.graph.nodes}
    assert facts["totals"] == {"params": summary.params, "flops": summary.flops,
                               "input": SHAPE}
    # every edge's weights are its own submodule's
    up = facts["edges"]["X1_0->X0_1"]
    assert up["params"] == count_params(model.get_submodule("up_X1_0_X0_1")) > 0
    assert up["kind"] == "up" and up["shape"] == [1, 4, 32, 32]


@pytest.mark.parametrize("spec, sets, shape", [
    ("unet_pp", SETS, SHAPE),
    ("bionet", ["base=2", "l=2"], [1, 3, 32, 32]),            # loops: shared weights
    ("attention_unet", ["base=4"], [1, 3, 32, 32]),           # attention gates on the skips
])
def test_node_flops_add_up_to_the_total(spec, sets, shape):
    m = compile_ir(build_ir(load_spec(spec, sets)), seed=0)
    s = summarize(m, shape)
    assert sum(r.flops for r in s.nodes) == s.flops > 0
    assert sum(r.params for r in s.nodes) == s.params


@pytest.mark.parametrize("spec", sorted(CORE | {"unet_e", "nnunet_plain", "resnet_unet"}))
def test_every_drawn_element_has_facts(spec):
    """Each node, edge and head of the SVG is keyed in the facts: loops folded as drawn,
    edges drawn from a port (full-scale skips, backward skips) keyed without it, the line to
    a head box keyed as its head."""
    ir = build_ir(load_spec(spec))
    svg = svg_of(draw(ir))
    facts = page_facts(ir, default_input_shape(ir))
    titles = [re.sub(r":[nsew]{1,2}(?=->|$)", "", html.unescape(t)) for t in re.findall(
        r'<g id="(?:node|edge)\d+" class="[^"]*">\s*<title>(.*?)</title>', svg)]
    keyed = set(facts["nodes"]) | set(facts["edges"]) | set(facts["heads"])
    drawn = {t for t in titles if t != "legend" and not t.startswith("loop_")}
    assert drawn == keyed, (drawn - keyed, keyed - drawn)


def test_estimated_facts_without_torch_figures():
    ir = build_ir(load_spec("unet_pp", SETS))
    facts = page_facts(ir, SHAPE)
    est = estimate_node_params(ir)
    assert not facts["exact"] and facts["totals"]["flops"] is None
    assert facts["nodes"]["X1_1"]["params"] == est["X[1,1]"]
    assert facts["nodes"]["X1_1"]["shape"] == [1, 8, 16, 16]
    assert facts["heads"]["out_head_X0_1"]["pruned_params"] == \
        estimate_params(ir.subgraph(["X[0,1]"]))
    assert sum(est.values()) == estimate_params(ir) == facts["totals"]["params"]


def test_session_positions_errors_as_check_does(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    text = (SPECS / "unet.yaml").read_text()
    bad = text.replace("\nnodes:", "\nnodez:", 1)  # an unknown key, a missing one
    assert bad != text
    path.write_text(bad)
    assert main(["check", str(path)]) == 2
    reported = capsys.readouterr().err.strip()
    data = ViewSession(str(path), []).analyse(bad, "")
    assert "\n".join(d["text"] for d in data["diagnostics"]) + (
        f"\n{len(data['diagnostics'])} errors" if len(data["diagnostics"]) > 1 else "") \
        == reported
    good = ViewSession(str(path), []).analyse(text, "1x1x64x64")
    assert good["diagnostics"] == [] and good["svg"].startswith("<svg")
    assert good["facts"]["totals"]["params"] == count_params(skipgraph.build("unet"))


def test_a_spec_cannot_run_code(tmp_path):
    """Expressions go through the whitelist: an import in one is an error at its position,
    and nothing happens."""
    marker = tmp_path / "ran"
    text = (SPECS / "unet.yaml").read_text().replace(
        "depth: 4", f"depth: \"${{__import__('os').system('touch {marker}')}}\"", 1)
    data = ViewSession(str(tmp_path / "s.yaml"), []).analyse(text, "")
    assert data["svg"] is None and data["diagnostics"]
    assert {d["code"] for d in data["diagnostics"]} <= {"bad-expression", "eval-error",
                                                        "bad-type", "bad-value"}
    assert all(d["line"] > 0 for d in data["diagnostics"])
    assert not marker.exists()


@pytest.fixture(scope="module")
def server():
    session = ViewSession(str(SPECS / "unet.yaml"), ["depth=2", "base=4"])
    srv = ViewServer(lambda: "<!DOCTYPE html><p>page</p>", session.analyse, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _request(srv, method="GET", path="/", body=None, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    headers = {"Host": host} if host else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    res = conn.getresponse()
    out = res.status, res.read()
    conn.close()
    return out


def test_server_binds_loopback_and_rejects_other_clients(server):
    assert server.server_address[0] == "127.0.0.1"
    for addr in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"):
        assert is_loopback(addr) and server.verify_request(None, (addr, 5000))
    for addr in ("192.168.1.20", "10.0.0.1", "::ffff:8.8.8.8", "2001:db8::1", "", "x"):
        assert not is_loopback(addr) and not server.verify_request(None, (addr, 5000))
    assert _request(server) == (200, b"<!DOCTYPE html><p>page</p>")
    # a page on another site that resolves its name to 127.0.0.1 (DNS rebinding)
    assert _request(server, host=f"evil.example:{server.port}")[0] == 403
    assert _request(server, "POST", "/api/spec", json.dumps({"text": "x"}),
                    host="evil.example")[0] == 403
    assert _request(server, path="/etc/passwd")[0] == 404


def _own_non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing address
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if is_loopback(addr) or addr == "0.0.0.0" else addr


def test_a_client_from_a_non_loopback_address_gets_no_answer(server):
    addr = _own_non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10,
                                  source_address=(addr, 0)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            answer = s.recv(1024)
        except ConnectionResetError:
            answer = b""
    assert answer == b""  # closed before any byte of the page


def test_api_answers_an_edit(server):
    text = (SPECS / "unet.yaml").read_text()
    status, body = _request(server, "POST", "/api/spec",
                            json.dumps({"text": text, "input": "1x1x32x32"}))
    data = json.loads(body)
    assert status == 200 and data["diagnostics"] == [] and data["facts"]["exact"]
    ir = build_ir(load_spec(SPECS / "unet.yaml", ["depth=2", "base=4"]))
    assert data["facts"]["totals"]["params"] == count_params(compile_ir(ir, seed=0))
    status, body = _request(server, "POST", "/api/spec",
                            json.dumps({"text": text, "input": "1x1x30x32"}))
    data = json.loads(body)  # an input the stride does not divide: said, shapes left out
    assert [d["code"] for d in data["diagnostics"]] == ["bad-input-size"]
    assert data["facts"]["totals"]["flops"] is None
    assert _request(server, "POST", "/api/spec", "not json")[0] == 400


def test_render_html_is_one_torch_free_file(tmp_path):
    out = tmp_path / "u.html"
    code = ("import sys; from skipgraph.cli import main; "
            f"rc = main(['render', 'unet_pp', '--set', 'ds=true', '-o', {str(out)!r}]); "
            "print(rc, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.stdout.split()[-2:] == ["0", "False"], proc.stderr
    html = out.read_text()
    data = _data(html)
    assert data["editable"] is False and "static file" in data["note"]
    assert data["facts"]["nodes"]["X0_4"]["params"] == estimate_node_params(
        build_ir(load_spec("unet_pp", ["ds=true"])))["X[0,4]"]
    for fetch in ("<link", "src=", "@import", "url(http"):
        assert fetch not in html
    assert "default-src 'none'" in html  # and the page's CSP forbids fetching anyway


def test_view_writes_exact_figures_of_a_checkpoint(tmp_path, model, capsys):
    ckpt, out = tmp_path / "m.pt", tmp_path / "m.html"
    small = model.prune("X[0,2]")
    skipgraph.save_checkpoint(small, ckpt)
    assert main(["view", str(ckpt), "--input", "1x1x32x32", "-o", str(out)]) == 0
    data = _data(out.read_text())
    assert data["facts"]["totals"]["params"] == count_params(small)
    assert set(data["facts"]["heads"]) == {"out_head_X0_2"}  # drawn pruned, as saved
    assert "checkpoint" in data["note"]


def test_view_diff_and_cli_errors(tmp_path, capsys):
    out = tmp_path / "d.html"
    assert main(["view", "unet", "--set", "base=4", "--diff", "unet_pp", "--input",
                 "1x1x32x32", "-o", str(out)]) == 0
    diff = _data(out.read_text())["diff"]
    assert diff["against"] == "unet_pp" and "+ node X[0,1]" in diff["text"]
    assert "parameters:" in diff["text"] and diff["svg"].startswith("<svg")
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text("skipgraph: 1\nname: x\nnodez: {}\n")
    assert main(["view", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3:1: error" in err and "Traceback" not in err
    assert main(["view", "unet", "--input", "1x1x30", "-o", str(out)]) == 0  # said on page
    with pytest.raises(SystemExit):
        main(["view", "unet", "--port", "99999"])


def test_notebook_display():
    ir = skipgraph.load_ir("unet_pp", ds=True)
    spec = skipgraph.load_spec("unet_pp", ds=True)
    m = skipgraph.build("unet", depth=2, base=4)
    for obj in (ir, spec, m):
        svg = obj._repr_svg_()
        assert svg.startswith("<svg") and "<title>X0_0</title>" in svg
    assert f"{count_params(m):,} parameters" in m._repr_html_()
    assert f"{estimate_params(ir):,} parameters (estimated" in ir._repr_html_()
    assert "<svg" in spec._repr_html_()
    # a spec that loads but does not validate (X[2,0] reaches no head): IPython's text repr
    broken = load_spec_text(TINY_SPEC.replace('up:      {from: "X[i+1,j-1]", to: "X[i,j]"}',
                                              ""))
    assert broken._repr_svg_() is None and broken._repr_html_() is None


def test_figures_measured_in_threads_are_each_model_s_own():
    """The server answers edits in threads; torch's flop counter charges modules through
    process-wide hooks, so the summary measures one model at a time."""
    models = [compile_ir(build_ir(load_spec("unet_pp", ["base=4", "ds=true"])), seed=0),
              compile_ir(build_ir(load_spec("unet", ["base=4"])), seed=0)]
    alone = [[r.flops for r in summarize(m, SHAPE).nodes] for m in models]
    seen: list[list] = [[], []]

    def measure(k: int) -> None:
        for _ in range(3):
            seen[k].append([r.flops for r in summarize(models[k], SHAPE).nodes])

    threads = [threading.Thread(target=measure, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [[alone[0]] * 3, [alone[1]] * 3]


def test_over_budget_and_busy_port_are_said(monkeypatch, server, capsys):
    monkeypatch.setenv("SKIPGRAPH_MAX_PARAMS", "1000")
    data = ViewSession(str(SPECS / "unet.yaml"), []).analyse((SPECS / "unet.yaml").read_text())
    assert [d["code"] for d in data["diagnostics"]] == ["resource-limit"]
    assert data["svg"].startswith("<svg") and not data["facts"]["exact"]
    monkeypatch.delenv("SKIPGRAPH_MAX_PARAMS")
    assert main(["view", "unet", "--set", "depth=2", "--port", str(server.port)]) == 2
    assert "--port 0 for any free one" in capsys.readouterr().err

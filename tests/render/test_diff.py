from skipgraph import load_ir
from skipgraph.cli import main
from skipgraph.render import diff_irs
from tests.conftest import SPECS


def test_diff_unet_to_unetpp():
    d = diff_irs(load_ir(SPECS / "unet.yaml"), load_ir(SPECS / "unet_pp.yaml"))
    assert sorted(d.added_nodes) == ["X[0,1]", "X[0,2]", "X[0,3]", "X[1,1]", "X[1,2]", "X[2,1]"]
    assert d.removed_nodes == []
    assert d.removed_families == {"skip": 4} and d.added_families == {"dense": 20}
    assert d.changed_families == {"up": (4, 10)}
    assert ("X[0,4]", (64, 32), (160, 32)) in d.channel_changes


def test_diff_of_a_spec_with_itself_is_empty():
    a = load_ir(SPECS / "unet_pp.yaml")
    assert diff_irs(a, a).empty


def test_diff_cli_text_and_drawing(tmp_path, capsys):
    out = tmp_path / "d.dot"
    assert main(["diff", str(SPECS / "unet.yaml"), str(SPECS / "unet_pp.yaml"),
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "+ node X[0,1]" in text and "- edge family skip (4 edges)" in text
    assert "parameters: 7,759,521 -> 9,041,601 (+1,282,080)" in text
    src = out.read_text()
    assert "#d6338a" in src and "unet -> unet++" in src

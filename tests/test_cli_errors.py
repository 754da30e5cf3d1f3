"""Files that are not specs, errors reported all at once, and the default eval output."""
import pytest

import skipgraph
from skipgraph.cli import main
from skipgraph.graph import build_ir
from skipgraph.spec import load_spec_text
from tests.conftest import SPECS, TINY_SPEC


def test_binary_spec_file_gets_line_and_column(tmp_path, capsys):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"skipgraph: 1\nname: \"ab\xff\"\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2:10: error: byte 0xff is not UTF-8 text; a spec is a UTF-8 YAML file  " \
           "[not-a-spec]" in err


@pytest.mark.parametrize("command", [["check"], ["build"], ["render", "-o", "x.svg"],
                                     ["expand"]])
def test_a_checkpoint_given_as_spec_is_named(command, tmp_path, capsys):
    ckpt = tmp_path / "m.pt"
    assert main(["build", "unet", "--set", "depth=1", "--set", "base=2", "--save",
                 str(ckpt)]) == 0
    capsys.readouterr()
    argv = [command[0], str(ckpt)] + [str(tmp_path / a) if a.endswith(".svg") else a
                                      for a in command[1:]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{ckpt} is a checkpoint or another torch.save file, not a spec  [not-a-spec]" in err
    assert "evaluate, prune, export and eject take checkpoints" in err
    assert "file-not-found" not in err and "utf-8" not in err


def test_check_reports_schema_and_family_errors_at_once(write_spec, capsys):
    text = (SPECS / "unet_pp.yaml").read_text().replace(
        'encoder: {from: "X[i-1,0]"', 'encoder: {from: "Y[i-1,0]"').replace(
        "dims: 2", "dims: 2\nwhat: 1")
    assert main(["check", str(write_spec(text))]) == 2
    err = capsys.readouterr().err
    assert "unknown key `what`" in err
    assert "`Y[i-1,0]` names the node family `Y`, which is not declared" in err
    assert "2 errors" in err


def test_default_output_is_the_full_resolution_head():
    text = TINY_SPEC.replace("output:", """\
  low: {on: "X[1,j]", if: "j == 1", out: classes, target: maxpool}
output:""").replace("""output: {mode: "${'ensemble' if ds else 'select'}"}""", "")
    ir = build_ir(load_spec_text(text))
    assert list(ir.heads)[-1] == "X[1,1]"  # declared last, low resolution
    assert ir.output_heads == ("X[0,2]",)


# --- issue-25 UX: output formats, dot's warnings, path-looking specs, build hints ----------

@pytest.mark.parametrize("name", ["noext", "x.jpeg"])
def test_render_names_the_file_and_every_format_it_writes(name, tmp_path, capsys):
    assert main(["render", "unet_pp", "-o", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert f"cannot tell the output format of {tmp_path / name}" in err
    assert ".svg, .png, .pdf, .dot, .gv or .html" in err
    assert not (tmp_path / name).exists()


def test_render_keeps_dots_layout_warnings_off_stderr(tmp_path, capfd):
    assert main(["render", "monai_unet", "-o", str(tmp_path / "m.svg")]) == 0
    assert "Warning" not in capfd.readouterr().err


@pytest.mark.parametrize("arg", ["unet_pp.yml", "specs_copy/unet_pp.yaml", "./unet_pp"])
def test_a_missing_path_looking_spec_is_an_error_not_the_zoo_spec(arg, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["check", arg]) == 2
    err = capsys.readouterr().err
    assert f"spec file {arg} does not exist" in err
    assert "the zoo spec `unet_pp` has that name" in err


@pytest.mark.parametrize("spec, shape, hint", [
    ("smp_fpn", "1x1x64x64", "--set in_channels=1"),
    ("monai_unet", "1x1x64x64", "--set dims=2"),
    ("unet", "1x1x60x60", "use sizes that are multiples of 16")])
def test_a_wrong_input_shape_hints_at_the_specs_own_param(spec, shape, hint):
    from skipgraph.graph import check_input_shape
    from skipgraph.errors import SpecError
    with pytest.raises(SpecError) as exc:
        check_input_shape(skipgraph.load_ir(spec), [int(s) for s in shape.split("x")])
    assert exc.value.diagnostics[0].hint.startswith(hint)


def test_build_prints_the_input_hint(capsys):
    assert main(["build", "smp_fpn", "--input", "1x1x64x64"]) == 2
    err = capsys.readouterr().err
    assert "expected 3 input channels, got 1" in err and "hint: --set in_channels=1" in err


@pytest.mark.parametrize("spec", ["monai_unet", "smp_manet", "smp_deeplabv3plus"])
def test_nodes_are_wide_enough_for_their_block_line(spec):
    import shutil
    import subprocess
    from skipgraph.render import DrawOptions, draw
    if shutil.which("dot") is None:
        pytest.skip("needs graphviz's dot")
    source = draw(skipgraph.load_ir(spec), DrawOptions(detail=True)).source
    run = subprocess.run(["dot", "-Kneato", "-Tsvg"], input=source.encode(), capture_output=True)
    assert "too small for label" not in run.stderr.decode()

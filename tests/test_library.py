"""skipgraph as an installed library: zoo names wherever a spec path works, user spec folders,
optional extras named when missing, quiet pipes, and what the wheel carries."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from skipgraph.extras import pip_install

import skipgraph
from skipgraph import zoo
from skipgraph.cli import main
from skipgraph.errors import SpecError
from tests.conftest import ROOT, SPECS, TINY_SPEC


def test_zoo_names_work_in_the_python_api(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nowhere near specs/
    assert skipgraph.load_spec("unet_pp").spec.name == "unet++"
    assert len(skipgraph.load_ir("unet_pp", ds=True).heads) == 4
    # a path-looking name that does not exist is an error, the zoo spec named in the hint
    with pytest.raises(SpecError, match="spec file unet_pp.yaml does not exist") as exc:
        skipgraph.load_ir("unet_pp.yaml")
    assert "the zoo spec `unet_pp` has that name" in exc.value.diagnostics[0].hint
    model = skipgraph.build("unet", depth=1, base=4)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert skipgraph.load_spec("unet_pp").path == str(SPECS / "unet_pp.yaml")


def test_a_path_that_exists_wins_over_a_zoo_name(monkeypatch, tmp_path):
    (tmp_path / "unet_pp").write_text(TINY_SPEC)  # a file literally named like a zoo spec
    monkeypatch.chdir(tmp_path)
    assert skipgraph.load_spec("unet_pp").spec.name == "tiny"


@pytest.mark.parametrize("name, close", [("unet_ppp", "unet_pp"), ("bionet2", "bionet"),
                                         ("unet_pp.yml", "unet_pp")])
def test_unknown_names_list_close_names(name, close, capsys):
    with pytest.raises(SpecError) as err:
        skipgraph.load_spec(name + "x" if name.endswith(".yml") else name)
    assert err.value.codes == ["file-not-found"]
    assert f"`{close}`" in err.value.diagnostics[0].hint
    assert main(["check", name + "x" if name.endswith(".yml") else name]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_a_path_with_a_folder_is_never_taken_for_a_name():
    with pytest.raises(SpecError) as err:
        skipgraph.load_spec(os.path.join("nowhere", "unet_pp"))
    assert err.value.codes == ["file-not-found"]


def test_extends_a_zoo_name_from_anywhere(write_spec):
    path = write_spec("skipgraph: 1\nname: shallow\nextends: unet_pp\nparams: {depth: 2}\n")
    ir = skipgraph.load_ir(path)
    assert ir.name == "shallow" and ir.max_level == 2
    relative = write_spec("skipgraph: 1\nname: two\nextends: spec.yaml\n", "two.yaml")
    assert skipgraph.load_ir(relative).name == "two"  # a relative file still comes first


def test_extends_an_unknown_name_points_at_the_key(write_spec):
    path = write_spec("skipgraph: 1\nname: x\nextends: unet_px\n")
    with pytest.raises(SpecError) as err:
        skipgraph.load_spec(path)
    d = err.value.diagnostics[0]
    assert d.code == "file-not-found" and d.span.line == 3 and "`unet_pp`" in d.hint


def test_user_spec_folders_are_searched_first(monkeypatch, tmp_path):
    mine, more = tmp_path / "mine", tmp_path / "more"
    mine.mkdir(), more.mkdir()
    (mine / "tiny.yaml").write_text(TINY_SPEC)
    (more / "unet.yaml").write_text(TINY_SPEC.replace("name: tiny", "name: my_unet"))
    (more / "deeper.yml").write_text("skipgraph: 1\nname: deeper\nextends: tiny\n"
                                     "params: {depth: 3}\n")
    monkeypatch.setenv(zoo.SPEC_PATH_ENV, os.pathsep.join([str(mine), "", str(more)]))
    monkeypatch.chdir(tmp_path)
    assert skipgraph.load_spec("tiny").spec.name == "tiny"
    assert skipgraph.load_spec("unet").spec.name == "my_unet"  # shadows the zoo's
    assert skipgraph.load_ir("deeper").max_level == 3  # extends a name from another folder
    assert skipgraph.load_spec("unet_pp").spec.name == "unet++"  # the zoo is still searched
    assert "tiny" not in zoo.zoo_specs()  # `skipgraph zoo` lists the shipped specs only


def test_every_cli_command_takes_a_zoo_name(tmp_path, capsys):
    small = ["--set", "depth=1", "--set", "base=4"]
    assert main(["check", "unet_pp"]) == 0
    assert main(["expand", "unet_pp"]) == 0
    assert main(["build", "unet_pp", "--json", *small]) == 0
    assert main(["render", "unet_pp", "-o", str(tmp_path / "x.dot")]) == 0
    assert main(["diff", "unet", "unet_pp"]) == 0
    assert main(["eject", "unet_pp", "-o", str(tmp_path / "m.py"), *small]) == 0
    capsys.readouterr()


def test_checkpoint_of_a_zoo_spec_loads_anywhere(monkeypatch, tmp_path):
    model = skipgraph.build("unet_pp", ds=True, depth=2, base=4, seed=0)
    skipgraph.save_checkpoint(model, tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKIPGRAPH_ZOO", str(tmp_path / "no_zoo_here"))  # nothing to re-read
    again = skipgraph.load_checkpoint("m.pt")
    assert again.state_dict().keys() == model.state_dict().keys()


# --- missing optional extras -------------------------------------------------------------

def test_export_without_the_export_extra_names_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    code = main(["export", "unet", "--set", "depth=1", "--set", "base=4",
                 "--onnx", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and pip_install("export") in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_training_without_the_train_extra_names_it(monkeypatch, tmp_path, capsys):
    from tests.test_train import make_folder
    data = make_folder(tmp_path / "data", n=3, size=32)
    monkeypatch.setitem(sys.modules, "PIL", None)
    code = main(["train", "unet", "--set", "depth=1", "--set", "base=4", "--data", str(data),
                 "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and pip_install("train") in err and "`PIL`" in err


def test_ms_ssim_loss_without_the_losses_extra_names_it(monkeypatch):
    import torch

    from skipgraph.extras import MissingExtraError
    from skipgraph.losses import ms_ssim_loss
    monkeypatch.setitem(sys.modules, "pytorch_msssim", None)
    with pytest.raises(MissingExtraError, match=r'skipgraph\[losses\]'):
        ms_ssim_loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_an_unrelated_import_error_keeps_its_own_message():
    from skipgraph.extras import explain
    assert explain(ModuleNotFoundError("No module named 'nope'", name="nope")) == \
        "No module named 'nope'"


# --- pipes -------------------------------------------------------------------------------

def test_output_into_a_closed_pipe_ends_quietly():
    """`skipgraph expand unet_pp | head -1`: the reader leaves before skipgraph writes."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "skipgraph.cli", "expand", "unet_pp"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/")
    proc.stdout.close()  # before the interpreter has even started: every write fails
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == "" and proc.returncode == 141


def test_head_reads_the_first_lines_and_nothing_complains():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(f"'{sys.executable}' -m skipgraph.cli schema | head -n 2",
                         shell=True, capture_output=True, text=True, env=env, cwd="/")
    assert out.stdout.splitlines() == ["{", ' "$defs": {'] and out.stderr == ""


# --- the wheel ---------------------------------------------------------------------------

@pytest.mark.slow
def test_the_wheel_carries_the_zoo_the_schema_and_the_licence(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)], check=True,
                   capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("skipgraph-*.whl"))).namelist()
    assert {f"skipgraph/specs/{p.name}" for p in SPECS.glob("*.yaml")} <= set(names)
    assert "skipgraph/docs/skipgraph.schema.json" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    # built from the repository's files, not from a second copy kept in the package
    assert not (ROOT / "skipgraph" / "specs").exists()
    assert Path(ROOT / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.slow  # full-size UNet++ forward passes
def test_the_readme_snippet_runs_from_any_directory(monkeypatch, tmp_path, capsys):
    text = (ROOT / "README.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'skipgraph.build("unet_pp"' in snippet
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    assert sorted(scope["heads"]) == ["X[0,1]", "X[0,2]", "X[0,3]", "X[0,4]"]
    assert scope["y"].shape == (2, 1, 96, 96) and scope["small"].heads == ["X[0,2]"]
    assert "def forward" in capsys.readouterr().out


def test_extra_hints_keep_torch_pinned(monkeypatch):
    """The hint names the shipped constraints file when the installed torch is the pinned
    one, and pins the installed torch otherwise (a GPU build is never replaced)."""
    from importlib import metadata

    from skipgraph import extras
    path = extras.constraints_file()
    assert path.is_file() and "torch==" in path.read_text()
    pinned = extras._pinned_torch(path)
    monkeypatch.setattr(metadata, "version", lambda name: pinned)
    assert extras.pip_install("export") == f'pip install -c {path} "skipgraph[export]"'
    monkeypatch.setattr(metadata, "version", lambda name: "2.99.0+cu128")
    assert extras.pip_install("medical") == \
        'pip install "skipgraph[medical]" "torch==2.99.0+cu128"  (keeps the installed torch)'

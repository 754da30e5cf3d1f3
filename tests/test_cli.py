import json
import subprocess
import sys

import pytest

from skipgraph.cli import main
from tests.conftest import ROOT, SPECS


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, params", [
    (["build", str(SPECS / "unet.yaml"), "--json"], 7_759_521),
    (["build", str(SPECS / "unet_pp.yaml"), "--json"], 9_041_601),
    (["build", str(SPECS / "unet_pp.yaml"), "--json", "--set", "ds=true"], 9_041_700),
    (["build", "unet", "--json", "--set", "norm=batch", "--set", "up=bilinear",
      "--set", "in_channels=3"], 7_852_545),
    (["build", "unet_pp", "--json", "--set", "norm=batch", "--set", "up=bilinear",
      "--set", "in_channels=3"], 9_163_329),
])
def test_build_json_params(capsys, argv, params):
    code, out, _ = run(capsys, *argv)
    assert code == 0
    data = json.loads(out)  # exactly one JSON object
    assert data["params"] == params
    assert {"name", "params", "buffers", "nodes", "heads"} <= set(data)
    node = next(n for n in data["nodes"] if n["id"] == "X[0,0]")
    assert {"id", "level", "in_channels", "out_channels", "params"} <= set(node)


def test_build_json_with_input_and_buffers(capsys):
    code, out, _ = run(capsys, "build", "unet", "--json", "--input", "1x1x64x64",
                       "--set", "norm=batch", "--set", "base=4")
    data = json.loads(out)
    assert data["flops"] > 0 and data["output_shapes"]["output"] == [1, 1, 64, 64]
    assert data["buffers"] > 0 and data["heads"] == ["X[0,4]"]


def test_build_time_reports_forward_and_training_step(capsys):
    code, out, _ = run(capsys, "build", "unet_pp", "--json", "--input", "1x1x32x32", "--set",
                       "base=2", "--set", "depth=2", "--time", "--reps", "2", "--channels-last",
                       "--checkpoint", "X")
    assert code == 0
    t = json.loads(out)["timing"]
    assert t["device"] == "cpu" and t["switches"] == {"channels_last": True} and t["reps"] == 2
    for task in ("forward", "train step"):
        assert t[task]["seconds"] > 0 and t[task]["flops"] > 0
    # a training step costs about 3 forward passes (+ the recomputation under checkpointing)
    assert 2.5 < t["train step"]["flops"] / t["forward"]["flops"] < 5
    code, out, _ = run(capsys, "build", "unet", "--input", "1x1x32x32", "--set", "base=2",
                       "--set", "depth=2", "--set", "norm=batch", "--time", "--reps", "1",
                       "--fold-bn")
    assert "switches: fold_bn=True" in out and "train step:" in out and "GFLOP/s" in out


@pytest.mark.parametrize("argv, message", [
    (["--time"], "--time needs --input"),
    (["--time", "--input", "1x1x32x32", "--device", "cuda:0"], "needs a CUDA device"),
    (["--time", "--input", "1x1x32x32", "--device", "tpu"], "is not a device"),
])
def test_build_time_option_errors(capsys, argv, message):
    import torch
    if "cuda:0" in argv and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run(capsys, "build", "unet", "--set", "base=2", *argv)
    assert code == 2 and message in err and "[bad-option]" in err


def test_build_table(capsys):
    code, out, _ = run(capsys, "build", "unet_pp", "--set", "depth=2", "--input", "1x1x32x32")
    assert code == 0 and "X[0,2]" in out and "trainable parameters" in out and "FLOPs" in out


def test_bad_input_shape_exit_2(capsys):
    code, _, err = run(capsys, "build", "unet", "--input", "1x1x30x30")
    assert code == 2 and "bad-input-size" in err
    code, _, err = run(capsys, "build", "unet", "--input", "banana")
    assert code == 2


def test_check_and_expand(capsys):
    assert run(capsys, "check", "unet_pp")[0] == 0
    code, out, _ = run(capsys, "expand", "unet", "--set", "depth=2")
    assert code == 0 and "X[0,2] = conv(cat[X[0,0], transpose(x2, X[1,1])])" in out
    code, out, _ = run(capsys, "expand", "unet", "--json")
    assert json.loads(out)["name"] == "unet"


def test_unknown_zoo_name_and_param(capsys):
    code, _, err = run(capsys, "check", "unet_ppp")
    assert code == 2 and "did you mean `unet_pp`" in err
    code, _, err = run(capsys, "check", "unet", "--set", "dpeth=2")
    assert code == 2 and "did you mean `depth`?" in err


def test_zoo_lists_every_spec(capsys):
    code, out, _ = run(capsys, "zoo")
    assert code == 0
    for path in SPECS.glob("*.yaml"):
        assert path.stem in out


def test_blocks_list(capsys):
    code, out, _ = run(capsys, "blocks", "conv*")
    assert code == 0 and out.startswith("conv:")


def test_schema_is_current_and_zoo_points_at_it(capsys):
    code, out, _ = run(capsys, "schema")
    assert json.loads(out) == json.loads((ROOT / "docs" / "skipgraph.schema.json").read_text()), \
        "regenerate with: skipgraph schema > docs/skipgraph.schema.json"
    for path in SPECS.glob("*.yaml"):
        assert path.read_text().startswith(
            "# yaml-language-server: $schema=../docs/skipgraph.schema.json")


def test_zoo_specs_validate_against_the_json_schema():
    import jsonschema

    from skipgraph.spec.yaml_source import load_yaml_file
    schema = json.loads((ROOT / "docs" / "skipgraph.schema.json").read_text())
    for path in SPECS.glob("*.yaml"):  # read as YAML 1.2 editors do (`on:` is a string)
        jsonschema.validate(load_yaml_file(str(path)).data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"skipgraph": 1, "name": "x", "nodes": {}, "edges": {}, "heads": {},
                             "output": {"mode": "average"}}, schema)


def test_check_does_not_import_torch():
    """Every zoo spec whose layers are written in it (all but the timm / MONAI encoder specs,
    whose levels and counts come from the encoder package) checks without torch."""
    from tests.conftest import ZOO
    names = [p.stem for p in ZOO]
    code = ("import sys; from skipgraph.cli import main; "
            f"rc = [main(['check', n]) for n in {names!r}]; "
            "print(sum(rc), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "0 False", out.stderr


def test_console_script_exit_status():
    proc = subprocess.run([sys.executable, "-m", "skipgraph.cli", "check", "nope.yaml"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "file-not-found" in proc.stderr

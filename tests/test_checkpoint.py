import pickle

import pytest
import torch

import skipgraph
from skipgraph.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from skipgraph.cli import main
from skipgraph.errors import SpecError
from tests.conftest import SPECS


def test_round_trip_is_exact(tmp_path):
    model = skipgraph.build(SPECS / "unet_pp.yaml", seed=3, base=4, depth=3, ds=True,
                            norm="batch").eval()
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, extra={"epoch": 3})
    again = load_checkpoint(path).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    assert read_checkpoint(path)["extra"] == {"epoch": 3}
    assert again.ir.params["depth"] == 3


def test_pruned_round_trip(tmp_path):
    model = skipgraph.build(SPECS / "unet_pp.yaml", seed=1, base=4, depth=3, ds=True).eval()
    small = model.prune("X[0,2]")
    save_checkpoint(small, tmp_path / "s.pt")
    again = load_checkpoint(tmp_path / "s.pt").eval()
    assert again.pruned and again.heads == ["X[0,2]"]
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), small(x))


def test_cli_prune_writes_the_smaller_model(tmp_path, capsys):
    full = tmp_path / "full.pt"
    assert main(["build", "unet_pp", "--set", "ds=true", "--save", str(full), "--json"]) == 0
    capsys.readouterr()
    assert main(["prune", str(full), "--head", "X[0,3]", "-o", str(tmp_path / "l3.pt")]) == 0
    assert "(24.4%)" in capsys.readouterr().out
    assert main(["prune", str(full), "--head", "X[0,9]", "-o", str(tmp_path / "x.pt")]) == 2


def test_build_prune_flag(capsys):
    import json
    assert main(["build", "unet_pp", "--set", "ds=true", "--prune", "X[0,1]", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["heads"] == ["X[0,1]"] and data["params"] == 100_961  # exactly U-Net L1


class _Evil:
    def __reduce__(self):
        return (print, ("executed!",))


def test_loading_never_executes_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "skipgraph-checkpoint", "version": 1, "spec": _Evil()}, path)
    with pytest.raises(SpecError) as info:
        load_checkpoint(path)
    assert "not a skipgraph checkpoint" in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(SpecError):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "skipgraph-checkpoint", "version": 99}, tmp_path / "v.pt")
    with pytest.raises(SpecError, match="version 99"):
        load_checkpoint(tmp_path / "v.pt")

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
    message = str(info.value)
    assert "not a skipgraph checkpoint" in message and "pickled Python objects" in message
    assert "weights_only" not in message and "False" not in message  # never advise unsafe loading


@pytest.mark.parametrize("content", [b"not a checkpoint", b"PK\x03\x04truncated zip"])
def test_a_corrupt_checkpoint_is_named_as_such_by_the_cli(tmp_path, capsys, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    from skipgraph.cli import main
    assert main(["prune", str(path), "--head", "X[0,1]", "-o", str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert "is not a skipgraph checkpoint: it is not a file written by torch.save" in err
    assert "Traceback" not in err and "weights_only" not in err


def test_bad_files(tmp_path):
    with pytest.raises(SpecError):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "skipgraph-checkpoint", "version": 99}, tmp_path / "v.pt")
    with pytest.raises(SpecError, match="version 99"):
        load_checkpoint(tmp_path / "v.pt")


def _tiny(**kw):
    return skipgraph.build(SPECS / "unet_pp.yaml", seed=2, base=4, depth=2, ds=True, **kw)


def _ddp(model):
    import socket

    import torch.distributed as dist
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                            world_size=1)
    return torch.nn.parallel.DistributedDataParallel(model)


@pytest.mark.parametrize("wrap", ["compile", "data_parallel", "ddp", "compile+ddp"])
def test_saving_unwraps_every_torch_wrapper(wrap, tmp_path):
    import torch.distributed as dist
    model = _tiny().eval()
    wrapped = model
    try:
        if "ddp" in wrap:
            wrapped = _ddp(wrapped)
        if wrap == "data_parallel":
            wrapped = torch.nn.DataParallel(wrapped)
        if "compile" in wrap:
            wrapped = torch.compile(wrapped)
        save_checkpoint(wrapped, tmp_path / "w.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    keys = list(read_checkpoint(tmp_path / "w.pt")["state_dict"])
    assert keys == list(model.state_dict()) and not any(k.startswith(("_orig_mod.", "module."))
                                                         for k in keys)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(tmp_path / "w.pt").eval()(x), model(x))


def test_saving_something_else_is_a_clear_error(tmp_path):
    with pytest.raises(TypeError, match="needs a compiled skipgraph model.*got Linear"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.pt")


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "_orig_mod.module."])
def test_files_with_wrapper_keys_load_prune_and_export(prefix, tmp_path, capsys):
    model = _tiny().eval()
    save_checkpoint(model, tmp_path / "m.pt")
    data = read_checkpoint(tmp_path / "m.pt")
    data["state_dict"] = {prefix + k: v for k, v in data["state_dict"].items()}
    path = tmp_path / "wrapped.pt"
    torch.save(data, path)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path).eval()(x), model(x))
    assert main(["prune", str(path), "--head", "X[0,1]", "-o", str(tmp_path / "p.pt")]) == 0
    assert main(["export", str(path), "--torch-export", str(tmp_path / "m.pt2")]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_weights_that_do_not_fit_the_spec_name_the_keys(tmp_path):
    save_checkpoint(_tiny(), tmp_path / "m.pt")
    data = read_checkpoint(tmp_path / "m.pt")
    data["state_dict"]["extra.weight"] = data["state_dict"].pop(next(iter(data["state_dict"])))
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(SpecError, match=r"missing 1 key\(s\), e.g. `X0_0.*1 unexpected key\(s\), "
                       "e.g. `extra.weight`"):
        load_checkpoint(tmp_path / "bad.pt")

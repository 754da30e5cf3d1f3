"""The benchmarks run (tiny sizes) and the hand-written references equal the compiled specs.
No timing is asserted: timings live in docs/performance.md."""
import sys
from pathlib import Path

import pytest
import torch

import skipgraph
from tests.conftest import ROOT, SPECS

sys.path.insert(0, str(ROOT / "bench"))
from reference import REFERENCES  # noqa: E402


@pytest.mark.parametrize("name, ds", [("unet", False), ("unet_pp", False), ("unet_pp", True)])
def test_reference_equals_compiled_spec(name, ds):
    kw = {"ds": ds} if name == "unet_pp" else {}
    spec = skipgraph.build(SPECS / f"{name}.yaml", seed=0, base=4, depth=3, **kw)
    ref = REFERENCES[name](base=4, depth=3, **kw)
    ref.load_state_dict(spec.state_dict(), strict=True)
    x = torch.randn(2, 1, 32, 32)
    for training in (False, True):
        spec.train(training), ref.train(training)
        a, b = spec(x), ref(x)
        if isinstance(a, dict):
            assert list(a) == list(b)
            for k in a:
                torch.testing.assert_close(a[k], b[k])
        else:
            torch.testing.assert_close(a, b)


def test_speed_benchmark_runs(capsys):
    import bench_speed
    bench_speed.main(["--size", "32", "--base", "2", "--reps", "1", "--batch", "1",
                      "--no-monai", "--device", "cpu"])
    out = capsys.readouterr().out
    assert out.count('"ratio"') == 4


@pytest.mark.slow
def test_speed_switches_benchmark_runs(tmp_path):
    import json

    import bench_speed
    out = tmp_path / "s.json"
    bench_speed.main(["--size", "32", "--base", "2", "--reps", "1", "--batch", "1",
                      "--no-monai", "--device", "cpu", "--models", "unet", "--switches",
                      "--out", str(out)])
    import tables
    data = json.loads(out.read_text())
    assert "| U-Net | cpu | train step | compile+channels_last |" in tables.speed(data)
    rows = [r for r in data["rows"] if r["part"] == "switches"]
    assert [r["task"] for r in rows] == ["forward", "train step"]
    for r in rows:
        assert r["gflops_per_call"] > 0
        for v in ("eager", "channels_last", "compile", "compile+channels_last"):
            assert r[f"{v}_speedup"] > 0 and r[f"{v}_tflops"] > 0


def test_memory_benchmark_measures():
    """One case as the benchmark runs it: in a fresh process (the CPU peak is the process's)."""
    import json
    import subprocess
    case = json.dumps(["bionet", {"t": 2, "base": 2, "l": 2}, ["iterations"]])
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_memory.py"), "--one",
                           case, "--size", "64", "--reps", "1"], capture_output=True, text=True,
                          check=True)
    row = json.loads(done.stdout)
    assert row["checkpoint"] == ["iterations"] and row["input"] == [1, 3, 64, 64]
    assert row["step_s"] > 0 and row["peak_mib"] > 0
    import tables
    assert "| BiO-Net | t=2 | iterations | 1x3x64x64 |" in tables.memory([row])


def test_build_benchmark_measures(tmp_path):
    import bench_build
    import tables
    row = bench_build.measure("unet_pp", {"depth": 4, "base": 4})
    assert row["nodes"] == 15 and row["edges"] == 35 and row["build_ms"] > 0
    assert row["hand_written_ms"] > 0
    assert "| UNet++ | 4 | 4 | 15 | 35 |" in tables.build([row])


@pytest.mark.parametrize("ckpt", [("iterations",), ("E", "D")])
def test_activation_checkpointing_changes_nothing_but_memory(ckpt):
    """Per loop iteration (one segment each) or per node family: the same output, gradients,
    BatchNorm running statistics (not updated twice by the recomputation) and state_dict."""
    x = torch.randn(2, 3, 32, 32)
    runs = []
    for c in ((), ckpt):
        model = skipgraph.build(SPECS / "bionet.yaml", seed=0, base=2, l=2, t=3,
                                checkpoint=c).train()
        out = model(x)
        out.mean().backward()
        runs.append((out.detach(), {k: p.grad for k, p in model.named_parameters()},
                     model.state_dict()))
    (out0, grads0, state0), (out1, grads1, state1) = runs
    torch.testing.assert_close(out1, out0)
    assert grads1.keys() == grads0.keys() and state1.keys() == state0.keys()
    for k in grads0:  # the order of gradient sums may differ: rounding only
        torch.testing.assert_close(grads1[k], grads0[k], rtol=1e-4, atol=1e-5)
    for k in state0:
        torch.testing.assert_close(state1[k], state0[k])


def test_checkpointed_loop_iterations_are_segments():
    model = skipgraph.build(SPECS / "bionet.yaml", seed=0, base=2, l=2, t=3,
                            checkpoint=("iterations",))
    code = model.train_code
    # one checkpointed call per iteration, fed by what enters it (S, and the backward skips)
    assert [f"seg_iterations_t{k}" in code for k in (1, 2, 3)] == [True] * 3
    assert "(seg_iterations_t2, S, D0, D1)" in code
    assert "self.E0_t2(" in model.seg_iterations_t2.code
    assert "checkpoint" not in model.code  # the eval graph runs plainly


def test_unknown_checkpoint_name():
    from skipgraph.errors import SpecError
    with pytest.raises(SpecError, match="did you mean `iterations`"):
        skipgraph.build(SPECS / "bionet.yaml", base=2, l=2, checkpoint=("iteration",))


def test_speed_switches_on_cpu():
    from skipgraph.compile.speed import optimize
    model = skipgraph.build(SPECS / "unet.yaml", seed=0, base=4, depth=2).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        ref = model(x)
        fast = optimize(model, channels_last=True)(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(fast, ref)
        assert optimize(model, amp="bf16")(x).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        optimize(model, amp="int4")


def test_interleaved_timing_and_paired_ratio():
    from skipgraph.compile.timing import interleaved, paired_ratio, peak_tflops
    calls = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                        reps=3, device=torch.device("cpu"), warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotating order
    assert [len(v) for v in times.values()] == [3, 3]
    assert paired_ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == 2.0
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert peak_tflops("NVIDIA H100 PCIe", "tf32") == 378.0
    assert peak_tflops("Some GPU", "bf16") is None


@pytest.mark.slow
def test_checkpointed_segments_compile_without_graph_breaks():
    model = skipgraph.build(SPECS / "bionet.yaml", seed=0, base=2, l=2, t=2,
                            checkpoint=("iterations",)).train()
    x = torch.randn(2, 3, 32, 32)
    assert torch._dynamo.explain(model)(x).graph_break_count == 0
    out = torch.compile(model, backend="aot_eager", fullgraph=True)(x)
    torch.testing.assert_close(out, model(x))


@pytest.mark.parametrize("spec, params, x_shape, folds", [
    ("unet_pp", {"base": 4, "depth": 2, "norm": "batch", "ds": True}, (2, 1, 32, 32), True),
    ("r2unet", {"base": 4, "depth": 2}, (2, 3, 32, 32), False),   # BN inside recurrent units
    ("attention_unet", {"base": 4, "depth": 2}, (2, 3, 32, 32), True),
    ("unet3p", {"base": 4}, (2, 3, 32, 32), True),
    ("bionet", {"base": 2, "l": 2}, (2, 3, 32, 32), False),       # conv -> ReLU -> BN: kept
])
def test_fold_batchnorm_keeps_the_function(spec, params, x_shape, folds):
    from torch.nn.modules.batchnorm import _BatchNorm

    from skipgraph.compile.speed import fold_batchnorm, optimize
    model = skipgraph.build(SPECS / f"{spec}.yaml", seed=0, **params)
    x = torch.randn(*x_shape)
    with torch.no_grad():
        model(x)  # one training-mode pass: running statistics that are not the defaults
    model.eval()
    norms = sum(isinstance(m, _BatchNorm) for m in model.modules())
    folded = fold_batchnorm(model)
    left = sum(isinstance(m, _BatchNorm) for m in folded.modules())
    assert (left < norms) == folds
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(optimize(model, fold_bn=True)(x), model(x), rtol=1e-4,
                                   atol=1e-5)
    assert sum(isinstance(m, _BatchNorm) for m in model.modules()) == norms  # untouched


def test_folded_model_refuses_training_and_saving(tmp_path):
    from skipgraph.checkpoint import save_checkpoint
    from skipgraph.compile.speed import fold_batchnorm
    model = skipgraph.build(SPECS / "unet.yaml", seed=0, base=2, depth=2, norm="batch")
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model)
    folded = fold_batchnorm(model.eval())
    with pytest.raises(RuntimeError, match="cannot be trained"):
        folded.train()
    import copy
    with pytest.raises(RuntimeError, match="cannot be trained"):
        copy.deepcopy(folded).train()
    with pytest.raises(ValueError, match="save the model before folding"):
        save_checkpoint(folded, tmp_path / "f.pt")


@pytest.mark.slow
def test_fold_benchmark_runs(tmp_path):
    import json

    import bench_speed
    import tables
    out = tmp_path / "f.json"
    bench_speed.main(["--models", "--fold-bn", "--size", "32", "--batch", "1", "--reps", "1",
                      "--device", "cpu", "--out", str(out)])
    data = json.loads(out.read_text())
    assert [r["model"] for r in data["rows"]] == list(bench_speed.FOLD_SPECS)
    assert all(r["fold_bn_speedup"] > 0 for r in data["rows"])
    assert "| UNet3+ | cpu |" in tables.speed(data)


def test_profile_peer_prints_the_op_tables_side_by_side(capsys):
    pytest.importorskip("monai")
    import profile_peer
    profile_peer.main(["monai_unet", "--set", "dims=2", "--size", "32", "--reps", "1",
                       "--top", "5"])
    out = capsys.readouterr().out
    assert out.count("ops whose count differs") == 2  # forward and train
    assert "aten::" in out and "sg count" in out

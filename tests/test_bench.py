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
                      "--no-monai"])
    out = capsys.readouterr().out
    assert out.count('"ratio"') == 4


def test_build_benchmark_measures(tmp_path):
    import bench_build
    row = bench_build.measure("unet_pp", {"depth": 4, "base": 4})
    assert row["nodes"] == 15 and row["edges"] == 35 and row["build_ms"] > 0


def test_activation_checkpointing_gives_the_same_gradients():
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for ckpt in ((), ("iterations",)):
        model = skipgraph.build(SPECS / "bionet.yaml", seed=0, base=2, l=2, t=2,
                                checkpoint=ckpt).train()
        model(x).mean().backward()
        grads.append(model.E0.conv1.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


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

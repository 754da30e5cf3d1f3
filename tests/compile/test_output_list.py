"""`output: {mode: list}`: eval mode returns every listed head, through compile, padding,
summary, prune, export, eject, checkpoints and evaluation (which scores `output.head`)."""
import numpy as np
import pytest
import torch

import skipgraph
from skipgraph.errors import SpecError
from tests.conftest import TINY_SPEC

LIST_SPEC = TINY_SPEC.replace("ds: false}", "ds: true}").replace(
    """output: {mode: "${'ensemble' if ds else 'select'}"}""", "output: {mode: list}")


@pytest.fixture
def list_model(write_spec):
    return skipgraph.build(write_spec(LIST_SPEC), seed=0).eval()


def test_eval_returns_every_head_in_declared_order(list_model):
    assert list_model.output_heads == ["X[0,1]", "X[0,2]"]
    assert list_model.main_head == "X[0,2]"  # the last full-size head
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        out = list_model(x)
        train = list_model.run_graph(x, training=True)
    assert isinstance(out, list) and len(out) == 2
    for h, t in zip(list_model.output_heads, out):
        torch.testing.assert_close(t, train[h])
    assert list_model.main_output(out) is out[1]
    assert "return [" in list_model.code


def test_written_order_and_main_head(write_spec):
    text = LIST_SPEC.replace("output: {mode: list}",
                             'output: {mode: list, heads: ["X[0,2]", "X[0,1]"], head: "X[0,1]"}')
    model = skipgraph.build(write_spec(text), seed=0).eval()
    assert model.output_heads == ["X[0,2]", "X[0,1]"] and model.main_head == "X[0,1]"
    with torch.no_grad():
        out = model(torch.randn(1, 1, 16, 16))
    assert model.main_output(out) is out[1]
    assert model.ir.to_dict()["output"] == {"mode": "list", "heads": ["X[0,2]", "X[0,1]"],
                                            "main": "X[0,1]"}


@pytest.mark.parametrize("output, key, match", [
    ('{mode: list, heads: ["X[0,1]", "X[0,9]"]}', "output.heads", "not a head"),
    ('{mode: list, heads: ["X[0,1]", "X[0,1]"]}', "output.heads", "twice"),
    ('{mode: list, heads: ["X[0,1]"], head: "X[0,2]"}', "output.head", "not one of the listed"),
    ('{mode: ensemble, head: "X[0,2]"}', "output.head", "for `select` and `list`"),
    ('{mode: lists}', "output.mode", "list"),
])
def test_bad_list_outputs_are_positioned_errors(write_spec, output, key, match):
    path = write_spec(LIST_SPEC.replace("output: {mode: list}", f"output: {output}"))
    with pytest.raises(SpecError, match=match) as info:
        skipgraph.load_ir(path)
    diag = info.value.diagnostics[0]
    assert diag.key == key or key in str(info.value)
    assert diag.span is not None and diag.span.line == LIST_SPEC.count("\n", 0,
                                                                      LIST_SPEC.index("output:")) + 1


def test_padded_list_outputs_are_cropped_per_head(write_spec):
    text = LIST_SPEC.replace("params:", "input: {pad: true}\nparams:").replace(
        'if: "j == depth or (ds and j >= 1)"', 'if: "j >= 1"')
    model = skipgraph.build(write_spec(text), seed=0).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 13, 11))
    assert [list(t.shape) for t in out] == [[1, 1, 13, 11]] * 2


def test_summary_prune_checkpoint_and_eject(list_model, tmp_path):
    from skipgraph.checkpoint import load_checkpoint, save_checkpoint
    from skipgraph.compile.summary import summarize
    from skipgraph.export import eject_source
    s = summarize(list_model, (1, 1, 16, 16))
    assert s.output_shapes["output[0]"] == [1, 1, 16, 16] and "output[1]" in s.output_shapes
    small = list_model.prune("X[0,1]").eval()
    assert small.ir.output_mode == "select" and small.main_head == "X[0,1]"
    assert isinstance(small(torch.randn(1, 1, 16, 16)), torch.Tensor)
    save_checkpoint(list_model, tmp_path / "m.pt")
    back = load_checkpoint(tmp_path / "m.pt").eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        for a, b in zip(back(x), list_model(x)):
            torch.testing.assert_close(a, b)
    namespace: dict = {}
    exec(compile(eject_source(list_model), "ejected.py", "exec"), namespace)  # our own source
    ejected = namespace[list_model.class_name]()
    ejected.load_state_dict(list_model.state_dict())
    with torch.no_grad():
        got = ejected.eval()(x)
        assert isinstance(got, list)
        for a, b in zip(got, list_model(x)):
            torch.testing.assert_close(a, b)


def test_export_gives_one_output_per_listed_head(list_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from skipgraph.export import export_onnx, export_program
    names = export_onnx(list_model, tmp_path / "m.onnx")
    assert names == ["X_0_1", "X_0_2"]
    x = torch.randn(2, 1, 16, 32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x.numpy()})
    with torch.no_grad():
        ref = list_model(x)
        exported = export_program(list_model).module()(x)
    for g, e, r in zip(got, exported, ref):
        np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(e, r)


def test_evaluation_scores_the_main_head(list_model):
    from skipgraph.train.evaluate import predict
    from skipgraph.train.windows import infer
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        main = list_model(x)[1]
    assert torch.equal(predict(list_model, x), main > 0.5)  # sigmoid head
    torch.testing.assert_close(infer(list_model, x), main)

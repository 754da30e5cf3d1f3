"""The head contract (what the loss, evaluation and sliding windows read of any head), the
losses' declared calling conventions, the one label rule, and train/ without import circles."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import ClassVar, Literal

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import skipgraph
import skipgraph.losses as L
from skipgraph.errors import SpecError
from skipgraph.heads import HEADS, TARGET_RULES, HeadType, register_head
from skipgraph.label_rule import (foreground, foreground_classes, label_map, max_label, one_hot,
                                  probabilities)
from skipgraph.loss_registry import LOSSES, register_loss
from skipgraph.losses import LossSignatureError, loss_for
from skipgraph.registry import RegistryError
from tests.conftest import ROOT, TINY_SPEC


class PlainHead(HeadType):
    """A user pixel-wise head written exactly per docs/architecture.md's recipe: no `act`, no
    `target` field; the contract's defaults apply (logits, max-pooled targets)."""

    type: Literal["plain"]
    out: int = 1
    expressions: ClassVar[dict[str, int]] = {}

    def out_channels(self) -> int:
        return self.out

    def term(self, node: str, level: int) -> str:
        return f"plain({node})"


class ProbHead(PlainHead):
    """One that declares its contract: sigmoid probabilities, average-pooled targets."""

    type: Literal["prob"]  # type: ignore[assignment]

    def activation(self) -> str:
        return "sigmoid"

    def target_rule(self) -> str:
        return "avgpool"


class BadHead(PlainHead):
    type: Literal["bad"]  # type: ignore[assignment]

    def activation(self) -> str:
        return "relu"


class PlainBuilder:
    @staticmethod
    def module(dims: int, head) -> nn.Module:
        return nn.Conv2d(head.in_channels, head.out_channels, 1)

    @staticmethod
    def steps(dims: int, head):
        return [(torch.sigmoid, {}, "sigmoid")] if head.activation == "sigmoid" else []


@pytest.fixture
def user_heads():
    for name, params in (("plain", PlainHead), ("prob", ProbHead), ("bad", BadHead)):
        register_head(name, params, PlainBuilder)
    yield
    for name in ("plain", "prob", "bad"):
        HEADS.unregister(name)


def _with_heads(extra: str) -> str:
    """TINY_SPEC with its seg head replaced by the given heads."""
    seg = '  seg: {on: "X[0,j]", if: "j == depth or (ds and j >= 1)", out: classes, act: sigmoid}\n'
    assert seg in TINY_SPEC
    return TINY_SPEC.replace(seg, extra)


def test_a_user_pixelwise_head_per_the_recipe_trains(write_spec, user_heads):
    """It built and ran, then the loss raised `AttributeError: ... no attribute 'target'`."""
    text = _with_heads('  main: {type: plain, on: "X[0,2]"}\n'
                       '  low: {type: plain, on: "X[1,1]"}\n')
    model = skipgraph.build(write_spec(text), seed=0).train()
    x, y = torch.randn(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    out = model(x)
    assert out["X[1,1]"].shape == (2, 1, 8, 8)
    loss = loss_for(model)(out, y)
    # the contract's defaults: logits, the target max-pooled to the low-resolution head
    expected = L.bce_dice(out["X[0,2]"], y, "none") + \
        L.bce_dice(out["X[1,1]"], F.max_pool2d(y, 2), "none")
    assert torch.allclose(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_a_declared_contract_is_what_the_loss_reads(write_spec, user_heads):
    text = _with_heads('  main: {type: prob, on: "X[0,2]"}\n  low: {type: prob, on: "X[1,1]"}\n')
    model = skipgraph.build(write_spec(text), seed=0).train()
    assert {h.activation for h in model.ir.heads.values()} == {"sigmoid"}
    assert {h.target_rule for h in model.ir.heads.values()} == {"avgpool"}
    y = (torch.rand(2, 1, 16, 16) > 0.5).float()
    out = model(torch.randn(2, 1, 16, 16))
    expected = L.bce_dice(out["X[0,2]"], y, "sigmoid") + \
        L.bce_dice(out["X[1,1]"], F.avg_pool2d(y, 2), "sigmoid")
    assert torch.allclose(loss_for(model)(out, y), expected)


def test_evaluation_and_windows_read_the_contract_of_a_user_head(write_spec, user_heads):
    from skipgraph.train.evaluate import predict
    from skipgraph.train.windows import infer
    text = _with_heads('  main: {type: plain, on: "X[0,2]", out: 3}\n')
    model = skipgraph.build(write_spec(text), seed=0)
    x = torch.randn(1, 1, 14, 14)  # padded to the stride and cropped back
    probs = infer(model, x)  # three logit channels: a softmax (the label rule)
    assert probs.shape == (1, 3, 14, 14)
    assert torch.allclose(probs.sum(1), torch.ones(1, 14, 14), atol=1e-5)
    assert torch.equal(predict(model, x), probs.argmax(1, keepdim=True) > 0)


def test_a_contract_value_that_is_not_known_is_a_positioned_error(write_spec, user_heads):
    with pytest.raises(SpecError) as info:
        skipgraph.load_ir(write_spec(_with_heads('  main: {type: bad, on: "X[0,2]"}\n')))
    [d] = info.value.diagnostics
    assert d.code == "head-contract" and "activation() 'relu'" in d.message
    assert d.span is not None and d.span.line == 12  # the head's line


def test_every_target_rule_a_head_may_declare_has_a_loss_side():
    assert set(TARGET_RULES) == set(L._TARGET_RULES)


# --- losses declare how they are called --------------------------------------------------------

CALLS: list[dict] = []


def eps_loss(p, y, eps=1e-6):
    """The user loss of the issue: it was called with raw logits and `eps="none"`."""
    CALLS.append({"p": p.detach(), "eps": eps})
    return 1 - (2 * (p * y).sum() + eps) / (p.sum() + y.sum() + eps)


def logit_loss(z, y, pos_weight=1.0):
    CALLS.append({"p": z.detach(), "eps": pos_weight})
    return F.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(pos_weight))


@pytest.fixture
def registered_losses():
    names = []

    def add(name, *args, **kwargs):
        names.append(name)
        return register_loss(name, *args, **kwargs)
    CALLS.clear()
    yield add
    for name in names:
        LOSSES.unregister(name)


def _logit_model(write_spec, loss: str, act: str = "none"):
    text = TINY_SPEC.replace("act: sigmoid", f"act: {act}") + f"loss: {{seg: {loss}}}\n"
    return skipgraph.build(write_spec(text), seed=0).train()


def test_a_user_loss_with_a_keyword_gets_probabilities_and_its_own_default(write_spec,
                                                                            registered_losses):
    registered_losses("mine", eps_loss, "Dice with eps")  # the recipe: no convention given
    model = _logit_model(write_spec, "mine")
    x, y = torch.randn(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    logits = model(x)
    assert logits.min() < 0  # raw logits: what the loss used to be given as `p`
    loss = loss_for(model)(logits, y)
    [call] = CALLS
    assert call["eps"] == 1e-6
    assert torch.allclose(call["p"], torch.sigmoid(logits.detach()))
    assert torch.allclose(loss, eps_loss(torch.sigmoid(logits), y))


def test_declared_keywords_and_logits_are_passed_as_declared(write_spec, registered_losses):
    registered_losses("mine", eps_loss, "Dice with eps", keywords={"eps": 0.25})
    registered_losses("raw", logit_loss, "BCE on logits", reads="logits",
                      keywords={"pos_weight": 2.0})
    y = (torch.rand(2, 1, 16, 16) > 0.5).float()
    model = _logit_model(write_spec, "mine")
    loss_for(model)(model(torch.randn(2, 1, 16, 16)), y)
    assert CALLS[-1]["eps"] == 0.25
    model = _logit_model(write_spec, "raw")
    logits = model(torch.randn(2, 1, 16, 16))
    loss = loss_for(model)(logits, y)
    assert CALLS[-1]["eps"] == 2.0 and torch.equal(CALLS[-1]["p"], logits.detach())
    assert torch.allclose(loss, logit_loss(logits, y, 2.0))
    assert LOSSES.get("raw").params.reads == "logits"
    assert LOSSES.get("bce_dice").params.reads == "output"


def test_a_loss_reading_logits_refuses_a_head_that_gives_probabilities(write_spec,
                                                                        registered_losses):
    registered_losses("raw", logit_loss, "BCE on logits", reads="logits")
    with pytest.raises(LossSignatureError, match=r"reads logits but head X\[0,2\] .* `sigmoid`"):
        loss_for(_logit_model(write_spec, "raw", act="sigmoid"))


def test_a_convention_the_function_cannot_take_is_an_error_when_training_starts(
        write_spec, registered_losses):
    registered_losses("two", lambda p, y: (p - y).abs().mean(), "L1", keywords={"eps": 1.0})
    with pytest.raises(LossSignatureError, match=r"called \(p, y, eps=\.\.\.\)"):
        loss_for(_logit_model(write_spec, "two"))
    registered_losses("short", lambda p, y: (p - y).abs().mean(), "L1", reads="output")
    with pytest.raises(LossSignatureError, match=r"reads='output' .* called \(out, y, act\)"):
        loss_for(_logit_model(write_spec, "short"))
    with pytest.raises(RegistryError, match="reads='probs'"):
        register_loss("nope", eps_loss, reads="probs")
    with pytest.raises(RegistryError, match="not an identifier"):
        register_loss("nope", eps_loss, keywords={"e-ps": 1})
    assert "nope" not in LOSSES


# --- the label rule ------------------------------------------------------------------------------

def test_the_label_rule_one_channel_and_k_channels():
    logits = torch.tensor([[[[-1.0, 0.5]]]])  # (1, 1, 1, 2)
    assert torch.equal(probabilities(logits, "none"), torch.sigmoid(logits))
    assert label_map(probabilities(logits, "none")).tolist() == [[[[0, 1]]]]
    k3 = torch.tensor([[[[2.0]], [[0.0]], [[3.0]]]])  # (1, 3, 1, 1)
    assert torch.allclose(probabilities(k3, "none").sum(1), torch.ones(1, 1, 1))
    assert label_map(probabilities(k3, "none")).item() == 2
    assert torch.equal(probabilities(k3, "sigmoid"), k3)  # probabilities stay as they are
    assert foreground(k3).shape[1] == 2 and foreground(logits).shape[1] == 1
    assert foreground_classes(1) == [1] and foreground_classes(3) == [1, 2]
    assert max_label(1) == 1 and max_label(4) == 3
    label = torch.tensor([[0, 2, 1]])
    assert one_hot(label, 3).argmax(0).tolist() == [0, 2, 1]
    assert one_hot(label, 1).tolist() == [[0.0, 1.0, 1.0]]
    assert torch.equal(label_map(one_hot(label, 3)[None])[0], label)  # the two directions agree


# --- no import circles in train/ -----------------------------------------------------------------

def _imports(path: Path, package: str) -> set[str]:
    """The skipgraph modules a file imports (at the top or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            out |= {f"{target}.{a.name}" for a in node.names} | {target}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("skipgraph"):
            out.add(node.module)
    return out


def test_train_modules_import_each_other_without_circles():
    import networkx as nx
    folder = ROOT / "skipgraph" / "train"
    modules = {f"skipgraph.train.{p.stem}": p for p in folder.glob("*.py")
               if p.stem != "__init__"}
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        graph.add_edges_from((name, t) for t in _imports(path, "skipgraph.train")
                             if t in modules and t != name)
    assert ("skipgraph.train.windows", "skipgraph.train.guards") in graph.edges  # it sees imports
    assert list(nx.simple_cycles(graph)) == []

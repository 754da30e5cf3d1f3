"""Pruning every head of UNet++ and UNet#: exact outputs, shared weights, ancestor counts."""
import pytest
import torch

import skipgraph
from skipgraph.compile.summary import count_params, summarize
from tests.conftest import SPECS

MODELS = {
    "unet_pp": dict(base=4, depth=4, ds=True),
    "unet_sharp": dict(base=4, ds=True, cgm=True, fs=2),
}


@pytest.fixture(scope="module", params=list(MODELS))
def full(request):
    torch.manual_seed(0)
    model = skipgraph.build(SPECS / f"{request.param}.yaml", seed=0, **MODELS[request.param])
    # train a step so BN statistics are not the defaults
    model.train()
    x = torch.randn(4, model.ir.in_channels, 32, 32)
    sum(o.float().mean() for o in model(x).values()).backward()
    return model.eval()


def _ancestor_params(model, head_id):
    """Parameters of the head's ancestors, from the full model's per-node table."""
    ir = model.ir
    rows = {r.id: r.params for r in summarize(model).nodes}
    heads = ir.needed_heads([head_id])
    nodes = ir.ancestors(ir.heads[h].node for h in heads)
    return sum(rows[n] for n in nodes) + sum(rows[f"head {h}"] for h in heads)


def test_every_head_prunes_exactly(full):
    x = torch.randn(2, full.ir.in_channels, 32, 32)
    with torch.no_grad():
        outs = full.graph_module(training=True)(x)
    for head in (h for h in full.heads if full.ir.heads[h].type == "seg"):
        small = full.prune(head).eval()
        with torch.no_grad():
            assert torch.equal(small(x), outs[head]), head
        small_sd, full_sd = small.state_dict(), full.state_dict()
        assert set(small_sd) <= set(full_sd)
        assert all(torch.equal(small_sd[k], full_sd[k]) for k in small_sd)
        assert count_params(small) == _ancestor_params(full, head), head


def test_pruned_module_is_smaller_code(full):
    head = next(h for h in full.heads if full.ir.heads[h].type == "seg")
    small = full.prune(head)
    assert len(small.code) < len(full.code)
    assert small.pruned and not full.pruned

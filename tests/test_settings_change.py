"""Every documented setting of every registered resampling op, block and head type changes the
built model, or `check` rejects it with a position (issue 15: nothing a spec says is silently
ignored). The cases come from the registries (tests/settings_probe.py), so a setting added
later is covered by the same rules, and one no rule can change fails here."""
import pytest
import torch
import torch.nn as nn
from pydantic import Field

from skipgraph.blocks.registry import BlockParams, register_block
from skipgraph.blocks import registry as block_registry
from tests import settings_probe as probe


def _cases() -> list:
    params = []
    for registry, name, model in probe.entries():
        try:
            cases = probe.cases_for(registry, name, model)
        except probe.NoRule as exc:  # a setting nobody taught the test to change: fail
            params.append(pytest.param(registry, name, model, None, str(exc),
                                       id=f"{registry}:{name}:no-rule"))
            continue
        for case in cases:
            params.append(pytest.param(registry, name, model, case, None, id=case.id))
    return params


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one thread is many times faster than several on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_setting_has_a_rule():
    """Fast (default run): each setting of each entry yields cases; the slow test runs them."""
    failures = [p.values[4] for p in _cases() if p.values[4] is not None]
    assert failures == []


@pytest.mark.slow
@pytest.mark.parametrize("registry, name, model, case, no_rule", _cases())
def test_each_setting_changes_the_model_or_is_rejected(registry, name, model, case, no_rule,
                                                        tmp_path):
    assert no_rule is None, no_rule
    _check_case(registry, name, model, case, tmp_path)


_BASE: dict = {}  # the base fingerprint of (entry, base settings): shared by its cases


def _check_case(registry, name, model, case, tmp_path):
    key = (registry, name, repr(sorted(case.base.items())))
    if key not in _BASE:
        base = probe.build(probe.probe_spec(registry, name, case.base, model), tmp_path / "a.yaml")
        assert base.error is None, f"the probe spec of {case.id} is rejected: {base.error}"
        _BASE[key] = probe.fingerprint(base.model)
    changed = probe.build(probe.probe_spec(registry, name, case.changed, model),
                          tmp_path / "b.yaml")
    if changed.error is not None:
        assert probe.positioned(changed.error), f"{case.id}: rejected without a position: " \
            f"{changed.error}"
        return
    what = probe.differs(_BASE[key], probe.fingerprint(changed.model))
    assert what is not None, f"{case.id}: `check` accepts it, yet the built model is the same " \
        "(modules, code, parameters, outputs and loss): the setting is silently ignored"


def test_every_registry_entry_is_probed():
    """Every op, block and head type skipgraph registers is probed (from the registries, no
    hand-kept list): only the entries in NOT_WRITTEN (made by expansion, covered elsewhere)
    are left out, and each probed entry has cases; every registered norm and activation name
    is tried as a value of some `norm:` / `act:` setting."""
    from skipgraph.blocks.options import ACTS, NORMS
    from skipgraph.blocks.registry import BLOCKS
    from skipgraph.heads import HEADS
    from skipgraph.resampling import RESAMPLE

    def own(registry):
        return {e.name for e in registry.list() if e.origin.startswith("skipgraph.")}

    registered = {(kind, n) for kind, reg in (("resample", RESAMPLE), ("block", BLOCKS),
                                               ("head", HEADS)) for n in own(reg)}
    assert probe.NOT_WRITTEN <= registered  # an exemption names a real entry
    entries = probe.entries()
    assert {(r, n) for r, n, _ in entries} == registered - probe.NOT_WRITTEN
    labels = set()
    for r, n, model in entries:
        cases = probe.cases_for(r, n, model)
        assert cases, f"{r} `{n}` has no setting the probe changes"
        labels |= {c.label for c in cases}
    for field, registry in (("norm", NORMS), ("act", ACTS)):
        for name in own(registry):
            assert any(label == f"{field}={name}" or label.startswith(f"{field}.{name}.")
                       for label in labels), f"{field} `{name}` is never probed"


class _IgnoredParams(BlockParams):
    """A block whose `gain` the builder never reads (the fault the test exists to catch)."""

    type: str = "ignores_gain"
    gain: float = Field(1.0, ge=0.0)


class _IgnoresGain(nn.Conv2d):
    def __init__(self, dims, in_channels, out_channels, params):
        super().__init__(in_channels, out_channels, 1)  # `params.gain` never read


def test_the_probe_catches_an_ignored_setting(tmp_path, monkeypatch):
    """Self-test: a registered block with a setting its builder ignores fails the probe; a
    setting whose type no rule knows fails too."""
    monkeypatch.setattr(probe, "_own", lambda registry, name: True)
    register_block("ignores_gain", _IgnoredParams, _IgnoresGain)
    try:
        [case] = probe.cases_for("block", "ignores_gain", _IgnoredParams)
        assert case.changed == {"gain": 1.25}
        with pytest.raises(AssertionError, match="silently ignored"):
            _check_case("block", "ignores_gain", _IgnoredParams, case, tmp_path)

        class _Untyped(BlockParams):
            type: str = "untyped"
            table: dict = {}
        with pytest.raises(probe.NoRule):
            probe.cases_for("block", "untyped", _Untyped)
    finally:
        block_registry.BLOCKS.unregister("ignores_gain")

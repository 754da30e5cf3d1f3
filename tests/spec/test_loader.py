import pytest

from skipgraph.errors import SpecError
from skipgraph.spec import load_spec, parse_overrides
from tests.conftest import SPECS, TINY_SPEC


def test_params_and_overrides(tiny_spec):
    rs = load_spec(tiny_spec, ["depth=3", "base=5", "ds=true"])
    assert rs.params["depth"] == 3 and rs.params["base"] == 5 and rs.params["ds"] is True
    assert rs.spec.output.mode == "ensemble"  # ${...} resolved from the overridden param


def test_dims_is_a_param_everywhere(tiny_spec):
    assert load_spec(tiny_spec).spec.dims == 2
    assert load_spec(tiny_spec, ["dims=3"]).spec.dims == 3


def test_set_reaches_every_block():
    rs = load_spec(SPECS / "unet_pp.yaml", ["norm=batch", "up=bilinear"])
    assert rs.spec.defaults.block.norm == "batch"
    assert rs.spec.defaults.up.op == "bilinear"


def test_unknown_param_suggests(tiny_spec):
    with pytest.raises(SpecError) as info:
        load_spec(tiny_spec, ["dpeth=3"])
    d = info.value.diagnostics[0]
    assert d.code == "unknown-param" and d.hint == "did you mean `depth`?"


@pytest.mark.parametrize("item", ["depth=deep", "ds=3", "depth=true"])
def test_override_type_must_match(tiny_spec, item):
    with pytest.raises(SpecError) as info:
        load_spec(tiny_spec, [item])
    assert info.value.codes == ["bad-type"]


def test_parse_overrides_reads_yaml_scalars():
    assert parse_overrides(["a=3", "b=true", "c=batch", "d=0.5"]) == \
        {"a": 3, "b": True, "c": "batch", "d": 0.5}
    with pytest.raises(SpecError):
        parse_overrides(["novalue"])


def test_placeholder_with_unknown_param_is_positioned(write_spec):
    path = write_spec(TINY_SPEC.replace('"${\'ensemble\' if ds else \'select\'}"',
                                        '"${mode}"'))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    d = info.value.diagnostics[0]
    assert d.code == "unknown-param" and d.span.line == 13  # the `output:` line


def test_param_defaults_may_derive_from_other_params(write_spec):
    path = write_spec(TINY_SPEC.replace("classes: 1,", "classes: 1, wide: '${base * 2}',"))
    assert load_spec(path).params["wide"] == 8
    assert load_spec(path, ["base=10"]).params["wide"] == 20


def test_extends_overrides_and_null_removes_a_family(tmp_path):
    (tmp_path / "base.yaml").write_text(TINY_SPEC)
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\nname: child\nparams: {base: 6}\nedges:\n  dense: null\n"
        "  skip: {from: 'X[i,0]', to: 'X[i,j]', if: 'j > 0'}\n")
    rs = load_spec(tmp_path / "child.yaml")
    assert rs.spec.name == "child" and rs.params["base"] == 6 and rs.params["depth"] == 2
    assert list(rs.spec.edges) == ["stem", "encoder", "up", "skip"]
    assert str(rs.span("edges", "skip")).startswith(str(tmp_path / "child.yaml"))


def test_extends_cycle_and_missing_base(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "a.yaml")
    assert info.value.codes == ["extends-cycle"]
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "c.yaml")
    assert info.value.codes == ["file-not-found"]


def test_missing_file():
    with pytest.raises(SpecError) as info:
        load_spec("/no/such/spec.yaml")
    assert info.value.codes == ["file-not-found"]


def test_all_problems_reported_together(write_spec):
    text = TINY_SPEC.replace("width: base * 2**i", "widht: base * 2**i").replace(
        "act: sigmoid", "act: sigmod").replace("params:", "defaults: {block: {kernal: 3}}\nparams:")
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text))
    assert sorted(info.value.codes) == ["bad-value", "unknown-key", "unknown-key"]
    hints = {d.hint for d in info.value.diagnostics}
    assert {"did you mean `width`?", "did you mean `sigmoid`?", "did you mean `kernel`?"} <= hints


def _limited(write_spec, limits: str):
    return write_spec(TINY_SPEC.replace("nodes:", f"limits: {limits}\nnodes:", 1)
                      .replace("ds: false}", "ds: false, up: transpose, ks: [1, 2]}"))


@pytest.mark.parametrize("limits, item, message", [
    ("{depth: {min: 1}}", "depth=0", "--set depth=0: `depth` must be >= 1"),
    ("{depth: {min: 1, max: 3}}", "depth=4", "--set depth=4: `depth` must be in 1..3"),
    ("{depth: {max: 3, why: too deep}}", "depth=9", "`depth` must be <= 3 (too deep)"),
    ("{up: {choices: [transpose, bilinear]}}", "up=nearest",
     "`up` must be one of 'transpose', 'bilinear'"),
    ("{ks: {min: 1}}", "ks=[1,0]", "--set ks=[1, 0]: `ks` must be >= 1"),
])
def test_a_param_outside_its_limits_is_positioned_at_the_limit(write_spec, limits, item,
                                                              message):
    path = _limited(write_spec, limits)
    with pytest.raises(SpecError) as info:
        load_spec(path, [item])
    (d,) = info.value.diagnostics  # only the cause, not the empty families it would give
    assert d.code == "bad-value" and message in d.message and d.span.line == 4


def test_values_inside_the_limits_load(write_spec):
    path = _limited(write_spec, "{depth: {min: 1, max: 3}, up: {choices: [transpose]}}")
    assert load_spec(path, ["depth=3"]).params["depth"] == 3
    assert load_spec(path, ["depth=1"]).params["depth"] == 1


@pytest.mark.parametrize("limits, code", [("{dpeth: {min: 1}}", "unknown-param"),
                                          ("{depth: {min: 3, max: 1}}", "bad-value"),
                                          ("{depth: {minimum: 1}}", "unknown-key")])
def test_a_malformed_limit_is_an_error(write_spec, limits, code):
    with pytest.raises(SpecError) as info:
        load_spec(_limited(write_spec, limits))
    assert info.value.codes[0] == code


@pytest.mark.parametrize("spec, param, low", [("unet", "depth", 1), ("unet_pp", "depth", 1),
                                              ("unet3p", "depth", 2), ("bionet", "t", 1),
                                              ("nnunet_plain", "stages", 3)])
def test_zoo_params_state_their_range(spec, param, low):
    """--set depth=0 used to say only that an edge family connects no pair."""
    with pytest.raises(SpecError) as info:
        load_spec(SPECS / f"{spec}.yaml", [f"{param}={low - 1}"])
    assert f"`{param}` must be >= {low}" in str(info.value)
    load_spec(SPECS / f"{spec}.yaml", [f"{param}={low}"])  # the smallest allowed value loads

import pytest

from skipgraph.errors import SpecError
from skipgraph.spec.yaml_source import load_yaml_text


def test_positions_of_keys_and_values():
    doc = load_yaml_text("a:\n  b: 1\n  c: [x, y]\n", "f.yaml")
    assert doc.data == {"a": {"b": 1, "c": ["x", "y"]}}
    assert str(doc.positions.span(("a", "b"))) == "f.yaml:2:6"
    assert str(doc.positions.span(("a", "b"), prefer_key=True)) == "f.yaml:2:3"
    assert str(doc.positions.span(("a", "c", 1))) == "f.yaml:3:10"
    assert str(doc.positions.span(("a", "missing"))) == "f.yaml:2:3"  # nearest ancestor


def test_yaml_11_boolean_words_stay_strings_as_keys():
    doc = load_yaml_text("on: 1\nno: 2\n")
    assert doc.data == {"on": 1, "no": 2}


def test_duplicate_keys_are_errors():
    with pytest.raises(SpecError) as info:
        load_yaml_text("a: 1\nb: 2\na: 3\n", "d.yaml")
    assert info.value.codes == ["duplicate-key"]
    assert info.value.diagnostics[0].span.line == 3


def test_billion_laughs_fails_fast():
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        levels.append(f"{chr(97 + i)}: &{chr(97 + i)} " + "[" + ", ".join(
            [f"*{chr(96 + i)}"] * 10) + "]")
    with pytest.raises(SpecError) as info:
        load_yaml_text("\n".join(levels))
    assert info.value.codes == ["resource-limit"]


def test_python_tags_are_not_executed():
    with pytest.raises(SpecError) as info:
        load_yaml_text("a: !!python/object/apply:os.system ['echo hacked']\n")
    assert info.value.codes == ["yaml-syntax"]


def test_syntax_error_has_position():
    with pytest.raises(SpecError) as info:
        load_yaml_text("a: [1, 2\nb: 3\n", "s.yaml")
    d = info.value.diagnostics[0]
    assert d.code == "yaml-syntax" and d.span.line == 2

"""The editor schema: every property of every section says what it is (hover help)."""
from skipgraph.heads import HEADS
from skipgraph.spec.json_schema import spec_json_schema


def _properties(node, path=""):
    """(dotted path, property schema) of every ``properties`` entry, however deep."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{path}.{name}", prop
        for key, value in node.items():
            yield from _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for k, value in enumerate(node):
            yield from _properties(value, f"{path}[{k}]")


def test_every_property_has_a_description():
    props = list(_properties(spec_json_schema()))
    assert len(props) >= 85
    missing = [path for path, prop in props if not str(prop.get("description", "")).strip()]
    assert missing == []


def test_descriptions_sit_where_editors_read_them():
    """Top level of the property, beside the ``anyOf`` that also admits a ${...} placeholder."""
    schema = spec_json_schema()
    kernel = schema["$defs"]["Transpose"]["properties"]["kernel"]
    assert kernel["description"].startswith("Kernel size")
    assert all("description" not in alt for alt in kernel["anyOf"][:1])
    assert schema["properties"]["extends"]["description"].count("unet_pp") == 1


def test_registered_head_types_are_described_too():
    schema = spec_json_schema()
    for name in ("seg", "cgm"):
        title = HEADS.get(name).params.__name__
        props = schema["$defs"][title]["properties"]
        assert all(p.get("description") for p in props.values()), title

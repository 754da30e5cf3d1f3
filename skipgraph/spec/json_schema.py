"""The JSON Schema of the spec format, for editors (yaml-language-server modelines)."""
from __future__ import annotations

from typing import Any

from .schema import Spec

__all__ = ["spec_json_schema"]

_PLACEHOLDER = {"type": "string", "pattern": r"^\$\{[^}]*\}$",
                "description": "a ${...} expression over the spec's params"}


def spec_json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True)
    _hoist_registered(schema)
    _allow_deletion(schema)
    _allow_placeholders(schema)
    # a spec that `extends:` another may leave the required keys to its base
    required = schema.pop("required", [])
    schema["if"] = {"not": {"required": ["extends"]}}
    schema["then"] = {"required": required}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "skipgraph spec"
    schema["description"] = ("A U-Net-family architecture as a graph: params, node families "
                             "X[i,j], edge families, heads. Values may be ${param} placeholders.")
    return schema


def _allow_deletion(schema: dict[str, Any]) -> None:
    """In a spec that ``extends:`` another, ``null`` deletes a named entry of a top-level
    section (a param, a node or edge family, a head): its entries may be null."""
    for prop in schema.get("properties", {}).values():
        entries = prop.get("additionalProperties")
        if isinstance(entries, dict) and entries:
            prop["additionalProperties"] = {"anyOf": [entries, {"type": "null"}]}


def _allow_placeholders(node: Any) -> None:
    """Every property may also be a ``${...}`` placeholder (resolved before validation)."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for name, prop in props.items():
                _allow_placeholders(prop)
                if "$ref" not in prop:
                    # the description stays at the top, where editors show it on hover
                    described = {k: prop.pop(k) for k in ("title", "description") if k in prop}
                    props[name] = {**described, "anyOf": [prop, _PLACEHOLDER]}
        for key, value in node.items():
            if key != "properties":
                _allow_placeholders(value)
    elif isinstance(node, list):
        for item in node:
            _allow_placeholders(item)


def _hoist_registered(schema: dict[str, Any]) -> None:
    """Registered models (head types, resampling ops) come inline (``anyOf`` of models); give
    them ``$defs`` entries named by their titles, as plain pydantic models get."""
    defs = schema.setdefault("$defs", {})

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, item in enumerate(node.get("anyOf", [])):
                if isinstance(item, dict) and "title" in item and "$ref" not in item \
                        and "properties" in item:
                    defs[item["title"]] = item
                    node["anyOf"][k] = {"$ref": f"#/$defs/{item['title']}"}
            for value in list(node.values()):
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk({k: v for k, v in schema.items() if k != "$defs"})
    walk(list(defs.values()))
    schema["$defs"] = dict(sorted(defs.items()))

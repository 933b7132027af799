"""Validates a JSON instance against one of the repo's schemas (used by the Swift tests, so both
sides of the bridge are checked against the same files)."""

import json
import os

import jsonschema

from ..errors import BridgeError

SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "schemas")


def load_schema(name: str) -> dict:
    path = os.path.normpath(os.path.join(SCHEMA_DIR, name))
    if os.path.dirname(path) != os.path.normpath(SCHEMA_DIR) or not os.path.isfile(path):
        raise BridgeError("input", f"no such schema: {name}")
    with open(path) as f:
        return json.load(f)


def validate(request: dict) -> dict:
    schema = load_schema(request.get("schema", ""))
    if "definition" in request:
        schema = {"$ref": f"#/$defs/{request['definition']}", "$defs": schema.get("$defs", {})}
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(request.get("instance")), key=lambda e: list(e.path))
    return {"valid": not errors, "errors": [f"{'/'.join(map(str, e.path))}: {e.message}"[:500] for e in errors[:20]]}

"""Checks JSON bodies against Synapse's REST model definitions.

The sandbox must answer the real synapseclient with bodies Synapse itself could
send; this checker compares a body with the model JSON files Synapse generates its
Java classes from, in Synapse's own dialect (``$ref`` to dotted class names,
``implements`` and ``extends``, ``type: interface`` picked by ``concreteType``, enum
models whose values are ``{"name": ...}`` objects, ``type: map``).

How a test uses it::

    from rest_models import check_body, require_models

    def test_get_task_answers_a_curation_task(sandbox_json):
        require_models()  # skips the test when no model files are available
        body = sandbox_json("GET", "/repo/v1/curation/task/1")
        task = "org.sagebionetworks.repo.model.curation.CurationTask"
        assert check_body(body, task) == []

``check_body(body)`` without a model name uses the body's ``concreteType``. Each
problem is one sentence naming the JSON path (``$.taskProperties.recordSetId``).
Fields set to null pass (Synapse reads null as absent) unless ``allow_null=False``.

The models are read from ``tests/rest_models/`` (a copy kept in the repository so
a clean clone can run the checks) or else from ``../shared/synapse-rest-models``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

MODEL_FOLDERS = (
    Path(__file__).parent / "rest_models",
    Path(__file__).parents[2] / "shared" / "synapse-rest-models",
)
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})"
)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "map": (dict,),
}


def models_folder() -> Path | None:
    """Return the first folder that holds the model files, or None."""
    for folder in MODEL_FOLDERS:
        if (folder / "org" / "sagebionetworks").is_dir():
            return folder
    return None


def require_models() -> Path:
    """Return the model folder, skipping the calling test when there is none."""
    folder = models_folder()
    if folder is None:
        searched = " or ".join(str(path) for path in MODEL_FOLDERS)
        pytest.skip(
            f"Synapse REST model files are not available (looked in {searched})"
        )
    return folder


@cache
def load_model(name: str) -> dict[str, Any]:
    """Return the model JSON for a dotted class name.

    Raises:
        LookupError: no model file has that name.
    """
    folder = require_models()
    path = folder.joinpath(*name.split(".")).with_suffix(".json")
    if not path.is_file():
        raise LookupError(f"No REST model file for {name} (expected {path}).")
    text = path.read_text(encoding="utf-8")
    # A few of Synapse's files carry trailing commas, which its own reader allows.
    model: dict[str, Any] = json.loads(re.sub(r",(\s*[}\]])", r"\1", text))
    return model


def _parents(name: str) -> Iterator[str]:
    model = load_model(name)
    references = model.get("implements", [])
    if "extends" in model:
        references = [model["extends"], *references]
    for reference in references:
        yield reference["$ref"]


def ancestors(name: str) -> set[str]:
    """Return every model ``name`` extends or implements, directly or not."""
    found: set[str] = set()
    pending = list(_parents(name))
    while pending:
        parent = pending.pop()
        if parent not in found:
            found.add(parent)
            pending.extend(_parents(parent))
    return found


def model_properties(name: str) -> dict[str, Any]:
    """Return the fields of a model, inherited ones included."""
    fields: dict[str, Any] = {}
    for parent in ancestors(name):
        fields.update(load_model(parent).get("properties", {}))
    fields.update(load_model(name).get("properties", {}))
    return fields


def _enum_names(spec: Mapping[str, Any]) -> list[str] | None:
    if "enum" not in spec:
        return None
    return [item["name"] if isinstance(item, dict) else item for item in spec["enum"]]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object")


def check_body(
    body: Mapping[str, Any], model: str | None = None, *, allow_null: bool = True
) -> list[str]:
    """Return every way ``body`` departs from its REST model; empty when it conforms.

    ``model`` is a dotted class name; without it the body's ``concreteType`` names
    the model.
    """
    problems: list[str] = []
    name = model or body.get("concreteType")
    if not isinstance(name, str):
        return ["$: the body has no concreteType and no model name was given."]
    _check_object(body, name, "$", problems, allow_null)
    return problems


def _check_object(
    body: Any, name: str, path: str, problems: list[str], allow_null: bool
) -> None:
    try:
        model = load_model(name)
    except LookupError as error:
        problems.append(f"{path}: {error}")
        return

    # An interface (or a body naming a subclass) is checked as its concrete type.
    concrete = body.get("concreteType") if isinstance(body, dict) else None
    if isinstance(concrete, str) and concrete != name:
        if concrete in _known_models() and name in ancestors(concrete):
            _check_object(body, concrete, path, problems, allow_null)
        else:
            problems.append(
                f"{path}: concreteType {concrete!r} is not a model that implements "
                f"{name}."
            )
        return

    if "enum" in model:
        _check_value(body, model, path, problems, allow_null)
        return

    if not isinstance(body, dict):
        problems.append(f"{path}: expected a {name} object, found {_type_name(body)}.")
        return

    if model.get("type") == "interface":
        problems.append(
            f"{path}: {name} is an interface; the body needs a concreteType naming "
            "its implementation."
        )
        return

    fields = model_properties(name)
    for key, value in body.items():
        if key not in fields:
            problems.append(f"{path}: unknown field {key!r} for {name}.")
        elif value is None and not allow_null:
            problems.append(f"{path}.{key}: is null; Synapse leaves unset fields out.")
        elif value is not None:
            _check_value(value, fields[key], f"{path}.{key}", problems, allow_null)


def _check_value(
    value: Any,
    spec: Mapping[str, Any],
    path: str,
    problems: list[str],
    allow_null: bool,
) -> None:
    if "$ref" in spec:
        _check_object(value, spec["$ref"], path, problems, allow_null)
        return

    declared = spec.get("type")
    accepted = _JSON_TYPES.get(declared) if isinstance(declared, str) else None
    is_bool = isinstance(value, bool)
    if accepted is not None and (
        not isinstance(value, accepted) or (is_bool and bool not in accepted)
    ):
        problems.append(f"{path}: expected {declared}, found {_type_name(value)}.")
        return

    names = _enum_names(spec)
    if names is not None and value not in names:
        problems.append(f"{path}: {value!r} is not one of {', '.join(names)}.")
    if spec.get("format") == "date-time" and not _DATE_TIME.fullmatch(value):
        problems.append(f"{path}: {value!r} is not an ISO 8601 date-time.")
    if declared == "array":
        items = spec.get("items", {})
        for index, item in enumerate(value):
            if item is None and not allow_null:
                problems.append(f"{path}[{index}]: is null.")
            elif item is not None:
                _check_value(item, items, f"{path}[{index}]", problems, allow_null)
    if declared == "map":
        for key, item in value.items():
            _check_value(key, spec.get("key", {}), f"{path} key", problems, allow_null)
            if item is not None:
                entry = spec.get("value", {})
                _check_value(item, entry, f"{path}[{key!r}]", problems, allow_null)


@cache
def _known_models() -> frozenset[str]:
    folder = require_models()
    return frozenset(
        ".".join(path.relative_to(folder).with_suffix("").parts)
        for path in folder.glob("org/**/*.json")
    )

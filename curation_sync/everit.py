"""An emulation of everit-org/json-schema 1.12.2, the validator Synapse runs.

It keeps everit's shape rather than JSON Schema's: a schema mixing keyword families
becomes a synthetic ``allOf`` (enum first, then combined keywords, not, const, the
declared type, then sniffed keyword families and if/then/else); failures form a
tree of pointers and bare messages; and several failures at one level are wrapped as
``N schema violations found`` (SEMANTICS.md §4). ``validation`` is its public face.

Limitations:
    ``nullable``, ``propertyNames``, ``readOnly``/``writeOnly`` and non-local
    ``$ref`` are not supported. ``not`` prints its schema as compact JSON, which
    may differ from everit's printer in key order. Patterns run on Python's ``re``,
    which agrees with Java's regular expressions for ordinary patterns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from curation_sync.javatext import format_problem, java_hash_order, java_text
from curation_sync.javatext import java_class as _cls

_Check = Callable[[Any], list["_Failure"]]

# Keyword families in the order everit's property sniffer looks for them.
_FAMILIES = {
    "array": ("items", "additionalItems", "minItems", "maxItems", "uniqueItems",
              "contains"),
    "object": ("properties", "required", "additionalProperties", "minProperties",
               "maxProperties", "dependencies", "patternProperties"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
               "multipleOf"),
    "string": ("minLength", "maxLength", "pattern", "format"),
}  # fmt: skip


class SchemaError(ValueError):
    """The JSON schema itself cannot be used (for example an unresolvable $ref)."""


@dataclass(frozen=True)
class _Failure:
    """One everit ValidationException: a pointer, its bare message, its causes."""

    pointer: str
    message: str
    causes: tuple[_Failure, ...] = ()

    def full(self) -> str:
        return f"{self.pointer}: {self.message}"

    def count(self) -> int:
        return max(1, sum(cause.count() for cause in self.causes))

    def prepend(self, segment: str) -> _Failure:
        escaped = segment.replace("~", "~0").replace("/", "~1")
        escaped = escaped.replace("\\", "\\\\").replace('"', '\\"')
        causes = tuple(cause.prepend(segment) for cause in self.causes)
        return _Failure("#/" + escaped + self.pointer[1:], self.message, causes)

    def leaves(self) -> list[str]:
        if not self.causes:
            return [self.full()]
        return _leaves_of(self.causes)


def _leaves_of(causes: Sequence[_Failure]) -> list[str]:
    # Direct leaves first, then the flattened leaves of nested failures.
    messages = [cause.full() for cause in causes if not cause.causes]
    for cause in causes:
        if cause.causes:
            messages.extend(_leaves_of(cause.causes))
    return messages


def _wrap(failures: Sequence[_Failure]) -> _Failure | None:
    if not failures:
        return None
    if len(failures) == 1:
        return failures[0]
    total = sum(failure.count() for failure in failures)
    return _Failure("#", f"{total} schema violations found", tuple(failures))


Outcome = tuple[list[str], "str | None", "str | None"]


def check_records(
    schema: Mapping[str, Any], records: Iterable[Mapping[str, Any]]
) -> Iterator[Outcome]:
    """Yield everit's ``getAllMessages``, ``getErrorMessage`` and ``getMessage``.

    One outcome per record; a valid record gives ``([], None, None)``. The schema
    must not change while the records are checked.

    Raises:
        SchemaError: the schema holds a reference that does not resolve.
    """
    checker = _Checker(schema)
    for record in records:
        failure = _wrap(checker.check(schema, dict(record)))
        if failure is None:
            yield [], None, None
        else:
            yield failure.leaves(), failure.message, failure.full()


class _Checker:
    """Walks a schema the way everit's ValidatingVisitor does, collecting failures."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        # Keyed by id(): the root keeps every sub-schema alive while it is in use.
        self.parts: dict[int, list[_Check]] = {}

    def failure_of(self, schema: Any, subject: Any) -> _Failure | None:
        return _wrap(self.check(schema, subject))

    def check(self, schema: Any, subject: Any) -> list[_Failure]:
        if schema is True:
            return []
        if schema is False:
            return [_Failure("#", "false schema always fails")]
        if "$ref" in schema:
            failure = self.failure_of(resolve_ref(self.root, schema["$ref"]), subject)
            return [] if failure is None else [failure]
        parts = self.parts.get(id(schema))
        if parts is None:
            parts = self.parts[id(schema)] = self._parts(schema)
        if len(parts) == 1:
            return parts[0](subject)
        return self._combined(parts, "allOf", subject)

    def _parts(self, schema: Mapping[str, Any]) -> list[_Check]:
        # Everit's loader runs enum, combined, not, const, then the type-based and
        # keyword-sniffing extractors; more than one result becomes a synthetic allOf.
        parts: list[_Check] = []
        if "enum" in schema:
            parts.append(lambda s: self._enum(schema["enum"], s))
        for key in ("allOf", "anyOf", "oneOf"):
            if key in schema:
                subs = [self._bound(sub) for sub in schema[key]]
                parts.append(self._combined_part(subs, key))
        if "not" in schema:
            parts.append(lambda s: self._not(schema["not"], s))
        if "const" in schema:
            parts.append(lambda s: self._const(schema["const"], s))
        declared = schema.get("type")
        if isinstance(declared, list):
            typed = [self._typed(schema, name) for name in declared]
            parts.append(self._combined_part(typed, "anyOf"))
        elif isinstance(declared, str):
            parts.append(self._typed(schema, declared))
        names = declared if isinstance(declared, list) else [declared]
        covered = {_family(name) for name in names}
        for family, keys in _FAMILIES.items():
            if family not in covered and any(key in schema for key in keys):
                parts.append(self._typed(schema, family, requires=False))
        if any(key in schema for key in ("if", "then", "else")):
            parts.append(lambda s: self._conditional(schema, s))
        return parts or [lambda s: []]

    def _bound(self, schema: Any) -> _Check:
        return lambda s: self.check(schema, s)

    def _combined_part(self, subs: Sequence[_Check], key: str) -> _Check:
        return lambda s: self._combined(subs, key, s)

    def _typed(
        self, schema: Mapping[str, Any], name: str, *, requires: bool = True
    ) -> _Check:
        if name == "null":
            return lambda s: (
                [] if s is None else [_fail(f"expected: null, found: {_cls(s)}")]
            )
        if name == "boolean":
            return lambda s: [] if isinstance(s, bool) else [_type_fail("Boolean", s)]
        checks = {"object": self._object, "array": self._array, "string": _string}
        if name in ("integer", "number"):
            return lambda s: _number(schema, s, requires, integer=name == "integer")
        if name not in checks:
            raise SchemaError(f"The schema uses the unknown type {name!r}.")
        return lambda s: checks[name](schema, s, requires)

    def _combined(
        self, subs: Sequence[_Check], key: str, subject: Any
    ) -> list[_Failure]:
        failures = [f for f in (_wrap(sub(subject)) for sub in subs) if f is not None]
        matching, total = len(subs) - len(failures), len(subs)
        if key == "allOf" and matching < total:
            text = f"only {matching} subschema matches out of {total}"
        elif key == "anyOf" and matching == 0:
            text = f"no subschema matched out of the total {total} subschemas"
        elif key == "oneOf" and matching != 1:
            text = f"{matching} subschemas matched instead of one"
        else:
            return []
        return [_Failure("#", f"#: {text}", tuple(failures))]

    def _conditional(self, schema: Mapping[str, Any], subject: Any) -> list[_Failure]:
        if "if" not in schema:
            return []
        if_failure = self.failure_of(schema["if"], subject)
        branch = "then" if if_failure is None else "else"
        if branch not in schema:
            return []
        failure = self.failure_of(schema[branch], subject)
        if failure is None:
            return []
        if if_failure is None:
            text = 'input is invalid against the "then" schema'
            return [_Failure("#", text, (failure,))]
        text = 'input is invalid against both the "if" and "else" schema'
        return [_Failure("#", text, (if_failure, failure))]

    def _enum(self, values: Sequence[Any], subject: Any) -> list[_Failure]:
        if any(_json_equal(value, subject) for value in values):
            return []
        return [_fail(f"{java_text(subject)} is not a valid enum value")]

    def _const(self, value: Any, subject: Any) -> list[_Failure]:
        return [] if _json_equal(value, subject) else [_fail("")]

    def _not(self, schema: Any, subject: Any) -> list[_Failure]:
        if self.check(schema, subject):
            return []
        printed = json.dumps(schema, separators=(",", ":"))
        return [_fail(f"subject must not be valid against schema {printed}")]

    def _object(
        self, schema: Mapping[str, Any], subject: Any, requires: bool
    ) -> list[_Failure]:
        if not isinstance(subject, dict):
            return [_type_fail("JSONObject", subject)] if requires else []
        out = [
            _fail(f"required key [{name}] not found")
            for name in schema.get("required", ())
            if name not in subject
        ]
        limits = (("minProperties", "minimum", -1), ("maxProperties", "maximum", 1))
        for key, word, sign in limits:
            if key in schema and (len(subject) - schema[key]) * sign > 0:
                out.append(
                    _fail(f"{word} size: [{schema[key]}], found: [{len(subject)}]")
                )
        dependencies = schema.get("dependencies", {})
        for name in java_hash_order(dependencies):
            needed = dependencies[name]
            if name in subject and isinstance(needed, list):
                missing = [n for n in needed if n not in subject]
                out += [_fail(f"property [{n}] is required") for n in missing]
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        extra = schema.get("additionalProperties", True)
        for name in java_hash_order(subject):
            known = name in properties or any(_finds(p, name) for p in patterns)
            if extra is False and not known:
                out.append(_fail(f"extraneous key [{name}] is not permitted"))
            elif not known and extra is not True:
                out += _prepended(self.failure_of(extra, subject[name]), name)
        for pattern, sub in patterns.items():
            for name in java_hash_order(subject):
                if _finds(pattern, name):
                    out += _prepended(self.failure_of(sub, subject[name]), name)
        for name in java_hash_order(dependencies):
            needed = dependencies[name]
            if name in subject and not isinstance(needed, list):
                failure = self.failure_of(needed, subject)
                out += [] if failure is None else [failure]
        for name in java_hash_order(properties):
            if name in subject:
                out += _prepended(
                    self.failure_of(properties[name], subject[name]), name
                )
        return out

    def _array(
        self, schema: Mapping[str, Any], subject: Any, requires: bool
    ) -> list[_Failure]:
        if not isinstance(subject, list):
            return [_type_fail("JSONArray", subject)] if requires else []
        size, out = len(subject), []
        if size < schema.get("minItems", size):
            found = f"{schema['minItems']}, found: {size}"
            out.append(_fail(f"expected minimum item count: {found}"))
        if size > schema.get("maxItems", size):
            found = f"{schema['maxItems']}, found: {size}"
            out.append(_fail(f"expected maximum item count: {found}"))
        pairs = ((a, b) for i, a in enumerate(subject) for b in subject[i + 1 :])
        if schema.get("uniqueItems") and any(_json_equal(a, b) for a, b in pairs):
            out.append(_fail("array items are not unique"))
        items = schema.get("items", True)
        tuple_items = items if isinstance(items, list) else []
        extra = schema.get("additionalItems", True) if tuple_items else items
        if extra is False and size > len(tuple_items):
            found = f"[{len(tuple_items)}] array items, found: [{size}]"
            out.append(_fail(f"expected: {found}"))
        for index, item in enumerate(subject):
            sub = tuple_items[index] if index < len(tuple_items) else extra
            if sub is not False:
                out += _prepended(self.failure_of(sub, item), str(index))
        contained = schema.get("contains")
        if contained is not None and all(self.check(contained, x) for x in subject):
            wanted = "expected at least one array item to match 'contains' schema"
            out.append(_fail(wanted))
        return out


def _finds(pattern: str, text: str) -> bool:
    # Java's Matcher.find(): the pattern may match anywhere in the text.
    try:
        return re.search(pattern, text) is not None
    except re.error as error:
        raise SchemaError(
            f"The schema's pattern {pattern!r} cannot be checked here ({error})."
        ) from error


def _fail(message: str) -> _Failure:
    return _Failure("#", message)


def _type_fail(expected: str, subject: Any) -> _Failure:
    return _fail(f"expected type: {expected}, found: {_cls(subject)}")


def _prepended(failure: _Failure | None, segment: str) -> list[_Failure]:
    return [] if failure is None else [failure.prepend(segment)]


def _family(declared: Any) -> str | None:
    if declared == "integer":
        return "number"
    return declared if isinstance(declared, str) else None


def _string(schema: Mapping[str, Any], subject: Any, requires: bool) -> list[_Failure]:
    if not isinstance(subject, str):
        return [_type_fail("String", subject)] if requires else []
    out: list[_Failure] = []
    length = len(subject)
    if "minLength" in schema and length < schema["minLength"]:
        out.append(
            _fail(f"expected minLength: {schema['minLength']}, actual: {length}")
        )
    if "maxLength" in schema and length > schema["maxLength"]:
        out.append(
            _fail(f"expected maxLength: {schema['maxLength']}, actual: {length}")
        )
    pattern = schema.get("pattern")
    if pattern is not None and not _finds(pattern, subject):
        out.append(_fail(f"string [{subject}] does not match pattern {pattern}"))
    problem = format_problem(schema.get("format"), subject)
    if problem is not None:
        out.append(_fail(problem))
    return out


def _number(
    schema: Mapping[str, Any], subject: Any, requires: bool, *, integer: bool
) -> list[_Failure]:
    is_number = isinstance(subject, (int, float)) and not isinstance(subject, bool)
    if not is_number or (integer and isinstance(subject, float)):
        expected = "Integer" if integer else "Number"
        return (
            [_type_fail(expected, subject)]
            if requires or (integer and is_number)
            else []
        )
    out: list[_Failure] = []
    value, shown = subject, java_text(subject)
    low, high = schema.get("minimum"), schema.get("maximum")
    low_x, high_x = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low is not None and (value <= low if low_x is True else value < low):
        word = "greater than" if low_x is True else "greater or equal to"
        out.append(_fail(f"{shown} is not {word} {java_text(low)}"))
    if _is_limit(low_x) and value <= low_x:
        out.append(_fail(f"{shown} is not greater than {java_text(low_x)}"))
    if high is not None and (value >= high if high_x is True else value > high):
        word = "less than" if high_x is True else "less or equal to"
        out.append(_fail(f"{shown} is not {word} {java_text(high)}"))
    if _is_limit(high_x) and value >= high_x:
        out.append(_fail(f"{shown} is not less than {java_text(high_x)}"))
    step = schema.get("multipleOf")
    if step is not None and Decimal(repr(value)) % Decimal(repr(step)) != 0:
        out.append(_fail(f"{shown} is not a multiple of {java_text(step)}"))
    return out


def _is_limit(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_equal(left: Any, right: Any) -> bool:
    # JSON equality: booleans are not numbers, 1 equals 1.0, containers deeply.
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            _json_equal(left[key], right[key]) for key in left
        )
    numeric = (int, float)
    if isinstance(left, numeric) and isinstance(right, numeric):
        return left == right
    return type(left) is type(right) and left == right


def resolve_ref(root: Mapping[str, Any], ref: str) -> Any:
    """Return the schema a local ``$ref`` (``#`` or ``#/definitions/x``) points at."""
    if not ref.startswith("#"):
        raise SchemaError(f"The schema reference {ref!r} is not local to the schema.")
    target: Any = root
    for part in filter(None, ref[1:].split("/")):
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        elif isinstance(target, Mapping) and key in target:
            target = target[key]
        else:
            raise SchemaError(f"The schema reference {ref!r} does not resolve.")
    return target

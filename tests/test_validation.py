"""Validation messages against the texts Synapse (everit 1.12.2) writes.

Expected strings come from SEMANTICS.md §4, the contributor guide's sample report,
Synapse's own validation-manager tests, and Java itself (HashMap order and
Double.toString were checked against a JDK on the development machine).
"""

from __future__ import annotations

from typing import Any

import pytest

from curation_sync.javatext import java_double, java_hash_order
from curation_sync.validation import (
    SchemaError,
    cell_to_json,
    enum_values,
    json_to_cell,
    list_property,
    record_from_cells,
    required_properties,
    schema_properties,
    summarize_messages,
    validate_record,
    validate_records,
)

DEMO_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "animal_id": {"type": "string"},
        "genotype": {"type": "string"},
        "sex": {"enum": ["male", "female", "unknown"]},
        "weight_g": {"type": "number", "minimum": 0},
        "age_weeks": {"type": "integer"},
        "birth_date": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["animal_id", "genotype"],
}
DEMO_COLUMNS = (
    "animal_id",
    "genotype",
    "sex",
    "weight_g",
    "age_weeks",
    "birth_date",
    "tags",
)


def one_property(prop: dict[str, Any], value: Any) -> list[str]:
    return validate_record({"properties": {"x": prop}}, {"x": value})


# The guide's sample report, and what the demo workbook rows produce.


def test_an_empty_required_cell_reads_as_the_guide_sample_shows() -> None:
    record = record_from_cells(
        DEMO_SCHEMA, DEMO_COLUMNS, ("A1", "", "male", "", "", "", "")
    )

    messages = validate_record(DEMO_SCHEMA, record)

    assert record == {"animal_id": "A1", "genotype": None, "sex": "male"}
    assert messages == ["#/genotype: expected type: String, found: Null"]
    assert summarize_messages(messages) == "expected type: String, found: Null"


def test_an_enum_only_column_with_a_stray_value_reads_as_the_guide_sample_shows() -> (
    None
):
    record = record_from_cells(
        DEMO_SCHEMA, DEMO_COLUMNS, ("A2", "wt", "other", "", "", "", "")
    )

    messages = validate_record(DEMO_SCHEMA, record)

    assert messages == ["#/sex: other is not a valid enum value"]
    assert summarize_messages(messages) == "other is not a valid enum value"


def test_a_complete_demo_row_is_valid() -> None:
    cells = ("A3", "wt", "female", "21.5", "8", "2024-01-31", '["a","b"]')
    record = record_from_cells(DEMO_SCHEMA, DEMO_COLUMNS, cells)

    assert validate_record(DEMO_SCHEMA, record) == []
    assert summarize_messages(validate_record(DEMO_SCHEMA, record)) is None


def test_a_demo_row_with_many_faults_lists_them_in_everit_order() -> None:
    cells = ("A4", "", "other", "-1.5", "2.5", "2021-02-30", '["a",1]')
    record = record_from_cells(DEMO_SCHEMA, DEMO_COLUMNS, cells)

    messages = validate_record(DEMO_SCHEMA, record)

    # HashMap order of the demo names (checked with a JDK): sex, birth_date,
    # animal_id, weight_g, age_weeks, genotype, tags.
    assert messages == [
        "#/sex: other is not a valid enum value",
        "#/birth_date: [2021-02-30] is not a valid date. Expected [yyyy-MM-dd]",
        "#/weight_g: -1.5 is not greater or equal to 0",
        "#/age_weeks: expected type: Integer, found: String",
        "#/genotype: expected type: String, found: Null",
        "#/tags/1: expected type: String, found: Integer",
    ]
    assert summarize_messages(messages) == "6 schema violations found"
    assert summarize_messages(messages, with_pointer=True) == (
        "#: 6 schema violations found"
    )


def test_empty_optional_cells_are_left_out_and_unknown_columns_kept_as_text() -> None:
    record = record_from_cells(
        DEMO_SCHEMA, ("animal_id", "genotype", "notes", "tags"), ("A5", "wt", "7", "")
    )

    assert record == {"animal_id": "A5", "genotype": "wt", "notes": "7"}


# SEMANTICS.md §4 examples.


def test_required_comes_before_property_failures_and_the_summary_counts_both() -> None:
    schema = {
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name"],
    }

    messages = validate_record(schema, {"age": "ten"})

    assert messages == [
        "#: required key [name] not found",
        "#/age: expected type: Integer, found: String",
    ]
    assert summarize_messages(messages) == "2 schema violations found"


def test_a_typed_enum_is_a_synthetic_all_of_with_the_leaf_in_the_messages() -> None:
    schema = {"properties": {"status": {"type": "string", "enum": ["a", "b"]}}}

    messages = validate_record(schema, {"status": "foo"})

    assert messages == ["#/status: foo is not a valid enum value"]
    assert summarize_messages(messages) == "#: only 1 subschema matches out of 2"
    assert summarize_messages(messages, with_pointer=True) == (
        "#/status: #: only 1 subschema matches out of 2"
    )


def test_a_wrong_type_in_a_typed_enum_fails_both_subschemas() -> None:
    schema = {"properties": {"status": {"type": "string", "enum": ["a", "b"]}}}

    messages = validate_record(schema, {"status": 5})

    assert messages == [
        "#/status: 5 is not a valid enum value",
        "#/status: expected type: String, found: Integer",
    ]
    assert summarize_messages(messages) == "#: only 0 subschema matches out of 2"


def test_nested_failures_come_after_the_direct_leaves_of_the_row() -> None:
    schema = {
        "properties": {
            "a": {"type": "string", "enum": ["x"]},
            "b": {"type": "integer"},
        },
        "required": ["c"],
    }

    messages = validate_record(schema, {"a": "y", "b": 1.5})

    assert messages == [
        "#: required key [c] not found",
        "#/b: expected type: Integer, found: Double",
        "#/a: y is not a valid enum value",
    ]
    assert summarize_messages(messages) == "3 schema violations found"


# Type messages, one per expected and found class.


@pytest.mark.parametrize(
    ("declared", "value", "message"),
    [
        ("string", None, "expected type: String, found: Null"),
        ("string", 5, "expected type: String, found: Integer"),
        ("string", 2**40, "expected type: String, found: Long"),
        ("string", 1.5, "expected type: String, found: Double"),
        ("string", True, "expected type: String, found: Boolean"),
        ("string", ["a"], "expected type: String, found: JSONArray"),
        ("string", {"a": 1}, "expected type: String, found: JSONObject"),
        ("integer", 123.456, "expected type: Integer, found: Double"),
        ("integer", "12", "expected type: Integer, found: String"),
        ("number", "1.5", "expected type: Number, found: String"),
        ("number", False, "expected type: Number, found: Boolean"),
        ("boolean", "true", "expected type: Boolean, found: String"),
        ("array", "a,b", "expected type: JSONArray, found: String"),
        ("object", [], "expected type: JSONObject, found: JSONArray"),
        ("null", "x", "expected: null, found: String"),
    ],
)
def test_type_failures_name_java_classes(
    declared: str, value: Any, message: str
) -> None:
    assert one_property({"type": declared}, value) == [f"#/x: {message}"]


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        ("string", ""),
        ("integer", -123),
        ("integer", 2**62),
        ("number", 5),
        ("number", 0.5),
        ("boolean", False),
        ("array", []),
        ("object", {}),
        ("null", None),
    ],
)
def test_values_of_the_declared_type_pass(declared: str, value: Any) -> None:
    assert one_property({"type": declared}, value) == []


def test_a_type_list_is_an_any_of() -> None:
    messages = one_property({"type": ["string", "integer"]}, 1.5)

    assert messages == [
        "#/x: expected type: String, found: Double",
        "#/x: expected type: Integer, found: Double",
    ]
    assert summarize_messages(messages) == (
        "#: no subschema matched out of the total 2 subschemas"
    )


# Enum and const.


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("other", "other"),
        (3, "3"),
        (2.5, "2.5"),
        (None, "null"),
        (True, "true"),
        (["a", 2.0], '["a",2]'),
    ],
)
def test_enum_failures_print_the_value_as_java_does(value: Any, shown: str) -> None:
    messages = one_property({"enum": ["male", 1, False]}, value)

    assert messages == [f"#/x: {shown} is not a valid enum value"]


def test_enum_matching_treats_one_and_one_point_zero_alike_but_not_true() -> None:
    assert one_property({"enum": [1]}, 1.0) == []
    assert one_property({"enum": [1]}, True) == ["#/x: true is not a valid enum value"]


def test_const_failures_have_an_empty_message() -> None:
    assert one_property({"const": "a"}, "b") == ["#/x: "]
    assert one_property({"const": "a"}, "a") == []


# Required, additional and counted properties, dependencies.


def test_each_missing_required_key_is_reported_in_required_order() -> None:
    schema = {"required": ["zeta", "alpha", "mid"]}

    messages = validate_record(schema, {"mid": 1})

    assert messages == [
        "#: required key [zeta] not found",
        "#: required key [alpha] not found",
    ]


def test_a_present_null_satisfies_required_but_fails_the_type() -> None:
    schema = {"properties": {"g": {"type": "string"}}, "required": ["g"]}

    assert validate_record(schema, {}) == ["#: required key [g] not found"]
    assert validate_record(schema, {"g": None}) == [
        "#/g: expected type: String, found: Null"
    ]


def test_extraneous_keys_are_named_when_additional_properties_are_off() -> None:
    schema = {"properties": {"a": {}}, "additionalProperties": False}

    assert validate_record(schema, {"a": 1, "b": 2}) == [
        "#: extraneous key [b] is not permitted"
    ]


def test_additional_property_schemas_apply_to_unknown_keys_only() -> None:
    schema = {"properties": {"a": {}}, "additionalProperties": {"type": "integer"}}

    assert validate_record(schema, {"a": "s", "b": "t"}) == [
        "#/b: expected type: Integer, found: String"
    ]


def test_property_counts_and_dependencies() -> None:
    schema = {"minProperties": 2, "maxProperties": 3, "dependencies": {"a": ["b"]}}

    assert validate_record(schema, {"a": 1}) == [
        "#: minimum size: [2], found: [1]",
        "#: property [b] is required",
    ]
    assert validate_record(schema, {"a": 1, "b": 2, "c": 3, "d": 4}) == [
        "#: maximum size: [3], found: [4]"
    ]


def test_nested_objects_prefix_their_pointer() -> None:
    schema = {
        "properties": {
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["zip"],
            }
        }
    }

    messages = validate_record(schema, {"address": {"city": 5}})

    assert messages == [
        "#/address: required key [zip] not found",
        "#/address/city: expected type: String, found: Integer",
    ]
    assert summarize_messages(messages) == "2 schema violations found"


def test_pointer_segments_are_escaped() -> None:
    schema = {"properties": {"a/b~c": {"type": "string"}}}

    assert validate_record(schema, {"a/b~c": 1}) == [
        "#/a~1b~0c: expected type: String, found: Integer"
    ]


# Strings: pattern, lengths, formats.


def test_pattern_failures_quote_the_value_and_the_pattern() -> None:
    pattern = r"^(\([0-9]{3}\))?[0-9]{3}-[0-9]{4}$"

    assert one_property({"type": "string", "pattern": pattern}, "(888)555-1212") == []
    assert one_property({"type": "string", "pattern": pattern}, "(800)FLOWERS") == [
        f"#/x: string [(800)FLOWERS] does not match pattern {pattern}"
    ]


def test_patterns_search_rather_than_match_the_whole_string() -> None:
    assert one_property({"pattern": "[0-9]{3}"}, "ab123cd") == []


def test_lengths_count_code_points() -> None:
    prop = {"type": "string", "minLength": 3, "maxLength": 4}

    assert one_property(prop, "ab") == ["#/x: expected minLength: 3, actual: 2"]
    assert one_property(prop, "abcde") == ["#/x: expected maxLength: 4, actual: 5"]
    assert one_property(prop, "a\U0001f42dc") == []


def test_string_keywords_without_a_type_ignore_other_types() -> None:
    assert one_property({"minLength": 3}, 12) == []


DATE_TIME_FORMS = (
    "[yyyy-MM-dd'T'HH:mm:ssZ, yyyy-MM-dd'T'HH:mm:ss.[0-9]{1,9}Z, "
    "yyyy-MM-dd'T'HH:mm:ss[+-]HH:mm, yyyy-MM-dd'T'HH:mm:ss.[0-9]{1,9}[+-]HH:mm]"
)
TIME_FORMS = (
    "[HH:mm:ssZ, HH:mm:ss.[0-9]{1,9}Z, HH:mm:ss[+-]HH:mm, HH:mm:ss.[0-9]{1,9}[+-]HH:mm]"
)


@pytest.mark.parametrize(
    ("name", "good", "bad", "message"),
    [
        (
            "date",
            "2024-02-29",
            "2023-02-29",
            "is not a valid date. Expected [yyyy-MM-dd]",
        ),
        (
            "date",
            "2024-12-31",
            "31/12/2024",
            "is not a valid date. Expected [yyyy-MM-dd]",
        ),
        (
            "date-time",
            "2024-01-31T10:20:30.123Z",
            "2024-01-31 10:20:30",
            f"is not a valid date-time. Expected {DATE_TIME_FORMS}",
        ),
        (
            "date-time",
            "2024-01-31T10:20:30+02:00",
            "2024-01-31",
            f"is not a valid date-time. Expected {DATE_TIME_FORMS}",
        ),
        ("time", "10:20:30Z", "10:20", f"is not a valid time. Expected {TIME_FORMS}"),
        ("email", "ana@example.org", "ana.example.org", "is not a valid email address"),
        ("hostname", "lab-1.example.org", "-lab.example", "is not a valid hostname"),
        ("ipv4", "192.168.0.1", "192.168.0.256", "is not a valid ipv4 address"),
        ("ipv6", "::1", "1::2::3", "is not a valid ipv6 address"),
        ("uri", "https://synapse.org/x?y=1", "no scheme here", "is not a valid URI"),
        ("uri-reference", "../a/b#c", "a b", "is not a valid URI reference"),
        ("uri-template", "/a/{id}", "/a/{id", "is not a valid URI template"),
        ("json-pointer", "/a/b~1c", "a/b", "is not a valid JSON pointer"),
        ("relative-json-pointer", "1/a", "/a", "is not a valid relative JSON Pointer"),
        ("regex", "^[a-z]+$", "([a-z]", "is not a valid regular expression"),
    ],
)
def test_format_failures(name: str, good: str, bad: str, message: str) -> None:
    prop = {"type": "string", "format": name}

    assert one_property(prop, good) == []
    assert one_property(prop, bad) == [f"#/x: [{bad}] {message}"]


def test_unknown_formats_are_ignored() -> None:
    assert one_property({"type": "string", "format": "colour"}, "mauve") == []


# Numbers: limits, exclusive limits, multiples, Java number text.


@pytest.mark.parametrize(
    ("prop", "value", "message"),
    [
        ({"minimum": 10}, 5, "5 is not greater or equal to 10"),
        ({"maximum": 1000}, 1500, "1500 is not less or equal to 1000"),
        ({"maximum": 1000}, 1500.0, "1500.0 is not less or equal to 1000"),
        ({"minimum": 0}, -0.5, "-0.5 is not greater or equal to 0"),
        ({"minimum": 0.5}, 0, "0 is not greater or equal to 0.5"),
        ({"exclusiveMinimum": 0}, 0, "0 is not greater than 0"),
        ({"exclusiveMaximum": 10}, 10, "10 is not less than 10"),
        ({"minimum": 3, "exclusiveMinimum": True}, 3, "3 is not greater than 3"),
        ({"maximum": 3, "exclusiveMaximum": True}, 3, "3 is not less than 3"),
        ({"multipleOf": 0.5}, 1.3, "1.3 is not a multiple of 0.5"),
        ({"maximum": 1}, 1e7, "1.0E7 is not less or equal to 1"),
    ],
)
def test_number_limit_failures(prop: dict[str, Any], value: Any, message: str) -> None:
    assert one_property({"type": "number", **prop}, value) == [f"#/x: {message}"]


def test_values_on_an_inclusive_limit_and_true_multiples_pass() -> None:
    prop = {"type": "number", "minimum": 0, "maximum": 10, "multipleOf": 0.1}

    assert one_property(prop, 0) == []
    assert one_property(prop, 10) == []
    assert one_property(prop, 0.3) == []


def test_a_number_breaking_both_limits_of_one_property_is_wrapped() -> None:
    prop = {"type": "integer", "minimum": 10, "multipleOf": 4}

    messages = one_property(prop, 5)

    assert messages == [
        "#/x: 5 is not greater or equal to 10",
        "#/x: 5 is not a multiple of 4",
    ]
    assert summarize_messages(messages) == "2 schema violations found"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1500.0, "1500.0"),
        (1.5, "1.5"),
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (12345678.9, "1.23456789E7"),
        (1e-4, "1.0E-4"),
        (0.001, "0.001"),
        (0.00012345, "1.2345E-4"),
        (-0.0, "-0.0"),
        (1.0 / 3, "0.3333333333333333"),
    ],
)
def test_doubles_print_as_java_double_to_string(value: float, text: str) -> None:
    assert java_double(value) == text


# Arrays.


def test_array_item_failures_carry_their_index() -> None:
    prop = {"type": "array", "items": {"type": "string"}}

    messages = one_property(prop, ["a", 1, None])

    assert messages == [
        "#/x/1: expected type: String, found: Integer",
        "#/x/2: expected type: String, found: Null",
    ]
    assert summarize_messages(messages) == "2 schema violations found"


def test_item_counts_and_uniqueness() -> None:
    prop = {"type": "array", "minItems": 2, "maxItems": 3, "uniqueItems": True}

    assert one_property(prop, ["a"]) == [
        "#/x: expected minimum item count: 2, found: 1"
    ]
    assert one_property(prop, [1, 2, 3, 4]) == [
        "#/x: expected maximum item count: 3, found: 4"
    ]
    assert one_property(prop, [1, 1.0]) == ["#/x: array items are not unique"]


def test_tuple_items_and_contains() -> None:
    prop = {
        "type": "array",
        "items": [{"type": "string"}, {"type": "integer"}],
        "additionalItems": False,
    }

    assert one_property(prop, ["a", "b", 3]) == [
        "#/x: expected: [2] array items, found: [3]",
        "#/x/1: expected type: Integer, found: String",
    ]
    assert one_property({"contains": {"const": 1}}, [2, 3]) == [
        "#/x: expected at least one array item to match 'contains' schema"
    ]


# Combined keywords, conditionals, references.


def test_all_of_any_of_one_of_and_not() -> None:
    strings = [{"type": "string"}, {"minLength": 2}]

    assert one_property({"allOf": strings}, "a") == [
        "#/x: expected minLength: 2, actual: 1"
    ]
    assert summarize_messages(one_property({"allOf": strings}, "a")) == (
        "#: only 1 subschema matches out of 2"
    )
    assert summarize_messages(one_property({"oneOf": strings}, "abc")) == (
        "#: 2 subschemas matched instead of one"
    )
    assert one_property({"anyOf": strings}, "a") == []
    assert one_property({"not": {"type": "string"}}, "a") == [
        '#/x: subject must not be valid against schema {"type":"string"}'
    ]


def test_a_failed_conditional_beside_properties_is_one_of_two_subschemas() -> None:
    schema = {
        "properties": {"country": {"enum": ["US", "CA"]}},
        "allOf": [
            {
                "if": {"properties": {"country": {"const": country}}},
                "then": {"properties": {"postal_code": {"pattern": pattern}}},
            }
            for country, pattern in (("US", "[0-9]{5}"), ("CA", "[A-Z][0-9][A-Z]"))
        ],
    }

    messages = validate_record(schema, {"country": "CA", "postal_code": "10000"})

    assert messages == [
        "#/postal_code: string [10000] does not match pattern [A-Z][0-9][A-Z]"
    ]
    assert summarize_messages(messages) == "#: only 1 subschema matches out of 2"
    assert validate_record(schema, {"country": "CA", "postal_code": "K1M"}) == []


def test_an_else_failure_reports_the_if_failure_and_the_else_failure() -> None:
    prop = {"if": {"type": "integer"}, "then": {"minimum": 0}, "else": {"const": "n"}}

    assert one_property(prop, 5) == []
    assert one_property(prop, -5) == ["#/x: -5 is not greater or equal to 0"]
    assert one_property(prop, "m") == [
        "#/x: expected type: Integer, found: String",
        "#/x: ",
    ]


def test_local_references_resolve_through_definitions() -> None:
    schema = {
        "definitions": {"sex": {"enum": ["male", "female"]}},
        "properties": {"sex": {"$ref": "#/definitions/sex"}},
    }

    assert validate_record(schema, {"sex": "x"}) == [
        "#/sex: x is not a valid enum value"
    ]
    assert schema_properties(schema)["sex"] == {"enum": ["male", "female"]}


def test_an_unresolvable_reference_is_a_schema_error() -> None:
    schema = {"properties": {"a": {"$ref": "#/definitions/missing"}}}

    with pytest.raises(SchemaError, match="does not resolve"):
        validate_record(schema, {"a": 1})
    with pytest.raises(SchemaError, match="not local"):
        validate_record({"$ref": "http://example.org/s.json"}, {})


def test_boolean_schemas() -> None:
    assert validate_record({"properties": {"a": False}}, {"a": 1}) == [
        "#/a: false schema always fails"
    ]
    assert validate_record({"properties": {"a": True}}, {"a": 1}) == []


# Order of property failures: java.util.HashMap iteration order.


def test_property_failures_follow_java_hash_map_order() -> None:
    # "a" and "b" hash to buckets 1 and 2; "q" shares bucket 1 with "a".
    strings = {"type": "string"}
    schema = {"properties": {"b": strings, "a": strings, "q": strings}}

    messages = validate_record(schema, {"b": 1, "a": 1, "q": 1})

    assert [message.split(":")[0] for message in messages] == ["#/a", "#/q", "#/b"]


@pytest.mark.parametrize(
    ("names", "order"),
    [
        (DEMO_COLUMNS, "sex,birth_date,animal_id,weight_g,age_weeks,genotype,tags"),
        (
            tuple(f"p{index:02d}" for index in range(1, 14)),
            "p10,p01,p12,p11,p03,p02,p13,p05,p04,p07,p06,p09,p08",
        ),
        (("name", "age", "émigré", "x/y"), "émigré,x/y,name,age"),
    ],
)
def test_hash_order_matches_a_jdk(names: tuple[str, ...], order: str) -> None:
    assert ",".join(java_hash_order(names)) == order


# Summaries of plain message lists.


def test_summaries_of_plain_lists_use_the_leaves() -> None:
    assert summarize_messages([]) is None
    assert summarize_messages(["#/sex: other is not a valid enum value"]) == (
        "other is not a valid enum value"
    )
    assert summarize_messages(["#: a", "#/b: c", "#/d: e"]) == (
        "3 schema violations found"
    )
    assert summarize_messages(["#: a", "#/b: c"], with_pointer=True) == (
        "#: 2 schema violations found"
    )
    assert summarize_messages(["#/b: c"], with_pointer=True) == "#/b: c"


# Cell typing.


@pytest.mark.parametrize(
    ("text", "prop", "value"),
    [
        ("", {"type": "string"}, None),
        ("", {"type": "integer"}, None),
        (" wt ", {"type": "string"}, " wt "),
        ("12", {"type": "string"}, "12"),
        ("12", {"type": "integer"}, 12),
        ("-12", {"type": "integer"}, -12),
        ("2.5", {"type": "integer"}, "2.5"),
        ("12 ", {"type": "integer"}, "12 "),
        ("99999999999999999999", {"type": "integer"}, "99999999999999999999"),
        ("1500", {"type": "number"}, 1500),
        ("21.5", {"type": "number"}, 21.5),
        ("1e3", {"type": "number"}, 1000.0),
        ("heavy", {"type": "number"}, "heavy"),
        ("NaN", {"type": "number"}, "NaN"),
        ("true", {"type": "boolean"}, True),
        ("TRUE", {"type": "boolean"}, True),
        ("yes", {"type": "boolean"}, False),
        ('["a","b"]', {"type": "array"}, ["a", "b"]),
        ("[1, 2.5]", {"type": "array", "items": {"type": "number"}}, [1, 2.5]),
        ("a,b", {"type": "array"}, "a,b"),
        ('{"a": 1}', {"type": "array"}, '{"a": 1}'),
        ("male", {"enum": ["male", "female"]}, "male"),
        ("2", {"enum": [1, 2, 3]}, 2),
        ("7", {"type": ["integer", "null"]}, 7),
        ("2024-01-31", {"type": "string", "format": "date"}, "2024-01-31"),
    ],
)
def test_cell_text_becomes_the_json_value_synapse_validates(
    text: str, prop: dict[str, Any], value: Any
) -> None:
    converted = cell_to_json(text, prop)

    assert converted == value
    assert type(converted) is type(value)


def test_cell_typing_follows_references_from_the_root() -> None:
    root = {"definitions": {"n": {"type": "integer"}}}

    assert cell_to_json("4", {"$ref": "#/definitions/n"}, root=root) == 4


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("wt", "wt"),
        (12, "12"),
        (21.5, "21.5"),
        (1500.0, "1500.0"),
        (True, "true"),
        (["a", "b"], '["a","b"]'),
        ([1.5, 2.0, "</x>"], '[1.5,2,"<\\/x>"]'),
    ],
)
def test_json_values_become_the_cell_text_synapse_writes(value: Any, text: str) -> None:
    assert json_to_cell(value) == text


def test_schema_helpers() -> None:
    assert list(schema_properties(DEMO_SCHEMA)) == list(DEMO_COLUMNS)
    assert required_properties(DEMO_SCHEMA) == ("animal_id", "genotype")
    assert enum_values(DEMO_SCHEMA["properties"]["sex"]) == (
        "male",
        "female",
        "unknown",
    )
    assert enum_values({"const": 3}) == (3,)
    assert enum_values({"type": "string"}) is None
    assert list_property(DEMO_SCHEMA["properties"]["tags"])
    assert not list_property(DEMO_SCHEMA["properties"]["genotype"])


def test_a_pattern_python_cannot_compile_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="cannot be checked here"):
        one_property({"type": "string", "pattern": r"\p{L}+"}, "abc")


def test_many_records_are_checked_against_one_schema_in_one_call() -> None:
    records = [{"animal_id": "A1", "genotype": "wt"}, {"animal_id": "A2"}]

    outcomes = validate_records(DEMO_SCHEMA, records)

    assert outcomes == [[], ["#: required key [genotype] not found"]]
    assert [summarize_messages(outcome) for outcome in outcomes] == [
        None,
        "required key [genotype] not found",
    ]


@pytest.mark.parametrize(
    ("text", "column_type", "value"),
    [
        ("1500", "DOUBLE", 1500.0),
        ("1500", "INTEGER", 1500),
        ("2.5", "INTEGER", "2.5"),
        ("1700000000000", "DATE", 1700000000000),
        ("1500", "STRING", "1500"),
        ("yes", "BOOLEAN", False),
        ('["a"]', "STRING_LIST", ["a"]),
        ('{"a": 1}', "JSON", {"a": 1}),
        ("", "DOUBLE", None),
    ],
)
def test_a_known_column_type_overrides_the_property_type(
    text: str, column_type: str, value: Any
) -> None:
    converted = cell_to_json(text, {"type": "number"}, column_type=column_type)

    assert converted == value
    assert type(converted) is type(value)


def test_a_double_column_prints_its_values_as_java_doubles() -> None:
    cells = ("A6", "wt", "male", "1500", "", "", "")
    record = record_from_cells(
        {
            **DEMO_SCHEMA,
            "properties": {"weight_g": {"type": "number", "maximum": 1000}},
        },
        DEMO_COLUMNS,
        cells,
        column_types={"weight_g": "DOUBLE"},
    )

    assert validate_record({"properties": {"weight_g": {"maximum": 1000}}}, record) == [
        "#/weight_g: 1500.0 is not less or equal to 1000"
    ]


@pytest.mark.parametrize(
    ("name", "text", "valid"),
    [
        ("hostname", "localhost", True),
        ("hostname", "example.org.", True),
        ("hostname", "1.2.3.4", False),
        ("hostname", "my_host.org", False),
        ("uri", "//cdn.example.org/a.js", True),
        ("uri", "urn:isbn:0451450523", True),
        ("uri", "http://example.org/ünïcode", True),
        ("uri", "/relative/path", False),
        ("email", "a.b+c@lab.example.org", True),
        ("email", "a..b@example.org", False),
        ("email", "ana@localhost", False),
    ],
)
def test_format_edges_follow_everits_validators(
    name: str, text: str, valid: bool
) -> None:
    messages = one_property({"type": "string", "format": name}, text)

    assert (messages == []) is valid


def test_a_schema_dependency_failure_is_reported_at_the_object() -> None:
    schema = {
        "properties": {"b": {"type": "string"}},
        "dependencies": {"a": {"required": ["c", "d"]}},
    }

    messages = validate_record(schema, {"a": 1, "b": 2})

    assert messages == [
        "#/b: expected type: String, found: Integer",
        "#: required key [c] not found",
        "#: required key [d] not found",
    ]
    assert summarize_messages(messages) == "3 schema violations found"
    assert validate_record(schema, {"b": "x"}) == []

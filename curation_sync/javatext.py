"""Java's handling of text, which is how Synapse's validation messages read.

Everit prints values with Java's ``toString``; org.json prints arrays compactly and
drops a trailing ``.0``; property failures follow ``java.util.HashMap`` order; and
the ``format`` keyword is decided by ``java.time`` and ``java.net`` parsers, which
``format_problem`` approximates with the standard library.

Limitations:
    The email and URI checks are looser than everit's (commons-validator, TLD list,
    ``java.net.URI``); dates, times, addresses and pointers follow everit closely.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

_DATE_TIME_FORMS = (
    "[yyyy-MM-dd'T'HH:mm:ssZ, yyyy-MM-dd'T'HH:mm:ss.[0-9]{1,9}Z, "
    "yyyy-MM-dd'T'HH:mm:ss[+-]HH:mm, yyyy-MM-dd'T'HH:mm:ss.[0-9]{1,9}[+-]HH:mm]"
)
_TIME_FORMS = (
    "[HH:mm:ssZ, HH:mm:ss.[0-9]{1,9}Z, HH:mm:ss[+-]HH:mm, HH:mm:ss.[0-9]{1,9}[+-]HH:mm]"
)
_TIME = r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-](0\d|1[0-8]):[0-5]\d)"


def java_class(value: Any) -> str:
    """Return the Java simple class name org.json gives this JSON value."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return "Integer"
        return "Long" if -(2**63) <= value < 2**63 else "BigInteger"
    names = {float: "Double", str: "String", list: "JSONArray", dict: "JSONObject"}
    return names.get(type(value), type(value).__name__)


def java_double(value: float) -> str:
    """Return ``Double.toString(value)``: ``1500.0``, ``1.5``, ``1.0E7``, ``1.0E-4``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0.0"
    digits_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()[1:]
    digits = "".join(map(str, digits_tuple))
    point = len(digits) + int(exponent)
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        whole, fraction = digits[:point].ljust(point, "0"), digits[point:]
        return f"{sign}{whole}.{fraction or '0'}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


def java_text(value: Any) -> str:
    """Return the Java ``toString`` of a JSON value, as everit prints it in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, (list, dict)):
        return _org_json(value)
    return str(value)


def _org_json(value: Any) -> str:
    # org.json's compact form: numbers lose a trailing ".0", "</" becomes "<\/".
    if isinstance(value, list):
        return "[" + ",".join(_org_json(item) for item in value) + "]"
    if isinstance(value, dict):
        keys = java_hash_order(value)
        return "{" + ",".join(f"{_quote(k)}:{_org_json(value[k])}" for k in keys) + "}"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float) and "." in java_double(value):
        text = java_double(value)
        return text if "E" in text else text.rstrip("0").rstrip(".")
    return java_text(value)


def _quote(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
               "\f": "\\f", "\r": "\\r"}  # fmt: skip
    out, previous = [], ""
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif char == "/" and previous == "<":
            out.append("\\/")
        elif char < " " or "\x80" <= char < "\xa0" or "\u2000" <= char < "\u2100":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
        previous = char
    return '"' + "".join(out) + '"'


def java_hash_order(keys: Iterable[str]) -> list[str]:
    """Return ``keys`` in the iteration order of a Java HashMap they were put into.

    Insertion order breaks ties inside a bucket; the table grows from 16 slots by
    doubling whenever the map is more than three quarters full.
    """
    return list(_hash_order(tuple(keys)))


@lru_cache(maxsize=4096)
def _hash_order(names: tuple[str, ...]) -> tuple[str, ...]:
    capacity = 16
    while len(names) > capacity * 0.75:
        capacity *= 2
    return tuple(sorted(names, key=lambda name: _spread(name) & (capacity - 1)))


def _spread(name: str) -> int:
    # String.hashCode over UTF-16 code units, then HashMap.hash's high-bit spread.
    code = 0
    data = name.encode("utf-16-be")
    for index in range(0, len(data), 2):
        code = (31 * code + (data[index] << 8 | data[index + 1])) & 0xFFFFFFFF
    return code ^ (code >> 16)


def format_problem(name: Any, text: str) -> str | None:
    """Return everit's message when ``text`` breaks the named format, else None."""
    checks: dict[str, tuple[Callable[[str], bool], str]] = {
        "date": (_is_date, "date. Expected [yyyy-MM-dd]"),
        "date-time": (_is_date_time, "date-time. Expected " + _DATE_TIME_FORMS),
        "time": (
            lambda t: re.fullmatch(_TIME, t) is not None,
            "time. Expected " + _TIME_FORMS,
        ),
        "email": (_is_email, "email address"),
        "hostname": (_is_hostname, "hostname"),
        "ipv4": (lambda t: _is_ip(t, 4), "ipv4 address"),
        "ipv6": (lambda t: _is_ip(t, 6), "ipv6 address"),
        "uri": (lambda t: _is_uri(t, absolute=True), "URI"),
        "uri-reference": (lambda t: _is_uri(t, absolute=False), "URI reference"),
        "uri-template": (_is_uri_template, "URI template"),
        "json-pointer": (
            lambda t: re.fullmatch(r"(/([^~/]|~[01])*)*", t) is not None,
            "JSON pointer",
        ),
        "relative-json-pointer": (
            lambda t: re.fullmatch(r"\d+(#|(/([^~/]|~[01])*)*)", t) is not None,
            "relative JSON Pointer",
        ),
        "regex": (_is_regex, "regular expression"),
    }
    if not isinstance(name, str) or name not in checks:
        return None
    check, what = checks[name]
    return None if check(text) else f"[{text}] is not a valid {what}"


def _is_date(text: str) -> bool:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) is None:
        return False
    try:
        date(int(text[:4]), int(text[5:7]), int(text[8:]))
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    # Everit's date-time parser resolves leniently: days 29-31 clamp to the month.
    found = re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T" + _TIME, text)
    return found is not None


def _is_email(text: str) -> bool:
    local = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    return re.fullmatch(local + "@", text.rsplit("@", 1)[0] + "@") is not None and (
        "@" in text and _is_hostname(text.rsplit("@", 1)[1], needs_tld=True)
    )


def _is_hostname(text: str, *, needs_tld: bool = False) -> bool:
    # Guava's InternetDomainName rules, as everit uses them: the last label may
    # not start with a digit, one trailing dot is allowed, no underscores.
    name = text[:-1] if text.endswith(".") else text
    label = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    if len(name) > 253 or re.fullmatch(rf"{label}(\.{label})*", name) is None:
        return False
    last = name.rsplit(".", 1)[-1]
    return not last[0].isdigit() and (not needs_tld or "." in name)


def _is_ip(text: str, version: int) -> bool:
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return False
    return parsed.version == version


def _is_uri(text: str, *, absolute: bool) -> bool:
    # java.net.URI's character rules; "uri" also needs a scheme or a leading "//".
    legal = r"([A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*"
    if re.fullmatch(legal, text) is None:
        return False
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:.", text) is not None
    return not absolute or scheme or text.startswith("//")


def _is_uri_template(text: str) -> bool:
    return re.fullmatch(r"([^{}]|\{[^{}]+\})*", text) is not None


def _is_regex(text: str) -> bool:
    try:
        re.compile(text)
    except re.error:
        return False
    return True

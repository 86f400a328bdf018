"""The value parsers: every accepted form, and the problem named for the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.config import (
    InvalidValueError,
    format_duration,
    parse_byte_size,
    parse_duration,
    parse_guid,
)
from shared.config.parsers import parse_url, parse_whole_number


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("90S", 90),
        ("30m", 1800),
        ("24h", 86400),
        ("1d", 86400),
        ("1.5h", 5400),
        ("PT24H", 86400),
        ("pt30m", 1800),
        ("P1DT2H", 93600),
        ("PT0.5S", 0.5),
        ("P2D", 172800),
        ("00:30:00", 1800),
        ("1.02:00:00", 93600),
        ("300", 300),
        ("2.5", 2.5),
    ],
)
def test_duration_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "P", "PT", "P1DT", "1w", "00:60:00", "10:00", "-5", "1 hour", "٣s", "9" * 31],
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_duration(text)
    assert caught.value.problem == "is not a duration"


@pytest.mark.parametrize("text", ["0", "PT0S", "0.0s"])
def test_zero_is_not_a_duration_that_can_be_used(text: str) -> None:
    with pytest.raises(InvalidValueError, match="is not a positive duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text",
    ["99999999999999999999d", "P999999999999999999D", "999999999999.00:00:00", "1000000000d"],
)
def test_durations_beyond_what_a_timedelta_holds_are_too_long_not_a_crash(text: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_duration(text)
    assert caught.value.problem == "is longer than 36500d"


def test_duration_bounds_are_inclusive_and_named() -> None:
    bounds = {"minimum": timedelta(seconds=1), "maximum": timedelta(hours=1)}
    assert parse_duration("1s", **bounds) == timedelta(seconds=1)
    assert parse_duration("PT1H", **bounds) == timedelta(hours=1)
    with pytest.raises(InvalidValueError, match=r"^'0.5s' is shorter than 1s$"):
        parse_duration("0.5s", **bounds)
    with pytest.raises(InvalidValueError, match=r"^'3601' is longer than 1h$"):
        parse_duration("3601", **bounds)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90, "90s"), (600, "10m"), (3600, "1h"), (5400, "90m"), (86400 * 30, "30d"), (0.5, "0.5s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{6D31E09F-0249-459F-94F0-AAD9C2C47B64}", "6d31e09f-0249-459f-94f0-aad9c2c47b64"),
        (" 6d31e09f-0249-459f-94f0-aad9c2c47b64 ", "6d31e09f-0249-459f-94f0-aad9c2c47b64"),
    ],
)
def test_parse_guid(text: str, expected: str) -> None:
    assert parse_guid(text) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is not a GUID"),
        ("6d31e09f02494 59f94f0aad9c2c47b64", "is not a GUID"),
        ("{6d31e09f-0249}", "is not a GUID"),
        (12, "is not a GUID"),
        ("00000000-0000-0000-0000-000000000000", "is the all-zero GUID, a placeholder"),
    ],
)
def test_parse_guid_rejects(value: object, problem: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_guid(value)
    assert caught.value.problem == problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (123, 123),
        ("123", 123),
        ("48MiB", 48 * 1024 * 1024),
        ("50 MB", 50_000_000),
        ("512kib", 512 * 1024),
        ("1GiB", 1 << 30),
        ("10B", 10),
    ],
)
def test_parse_byte_size(text: str | int, expected: int) -> None:
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is not a size"),
        ("MiB", "is not a size"),
        ("1.5MiB", "is not a size"),
        ("-3", "is not a size"),
        ("12 parsecs", "is not a size"),
        ("٣", "is not a size"),
        (True, "is not a size"),
        ("0", "is not a positive size"),
        (1025 * 1024 * 1024, "is larger than 1GiB"),
        ("9" * 20, "is larger than 1GiB"),
    ],
)
def test_parse_byte_size_rejects(text: str | int, problem: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_byte_size(text)
    assert caught.value.problem == problem


def test_a_byte_size_may_have_a_larger_maximum_named_in_the_problem() -> None:
    assert parse_byte_size("1TiB", maximum=1024**4) == 1024**4
    with pytest.raises(InvalidValueError) as caught:
        parse_byte_size("2TB", maximum=1024**4)
    assert caught.value.problem == "is larger than 1TiB"


@pytest.mark.parametrize("text", ["0", "65", "-1", "²", "٣", "1e1", " 5", ""])
def test_whole_numbers_are_ascii_digits_in_range(text: str) -> None:
    with pytest.raises(InvalidValueError, match="is not a whole number from 1 to 64"):
        parse_whole_number(text, minimum=1, maximum=64)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Contoso.Operations.Dynamics.com/", "https://contoso.operations.dynamics.com"),
        (
            "https://contoso.operations.dynamics.com:443",
            "https://contoso.operations.dynamics.com:443",
        ),
        ("http://127.0.0.1:8443", "http://127.0.0.1:8443"),
        ("http://[::1]:1", "http://[::1]:1"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
    ],
)
def test_parse_url(url: str, expected: str) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://fno.example.com:99999", "has an invalid port (ports run from 1 to 65535)"),
        ("https://fno.example.com:0", "has an invalid port (ports run from 1 to 65535)"),
        ("https://fno.example.com:https", "has an invalid port (ports run from 1 to 65535)"),
        ("https://fno.example.com.", "has a host name ending in '.'; remove the trailing dot"),
        (
            "https://fno_1.example.com",
            "has an invalid host name (letters, digits and hyphens between dots)",
        ),
        (
            "https://-fno.example.com",
            "has an invalid host name (letters, digits and hyphens between dots)",
        ),
        (
            "https://fno..example.com",
            "has an invalid host name (letters, digits and hyphens between dots)",
        ),
        (
            "https://" + "a" * 64 + ".com",
            "has an invalid host name (letters, digits and hyphens between dots)",
        ),
        ("ftp://fno.example.com", "is not an http(s) URL"),
    ],
)
def test_parse_url_rejects(url: str, problem: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_url(url)
    assert caught.value.problem == problem
    assert str(caught.value) == f"{url!r} {problem}"


def test_a_url_that_may_hold_a_secret_is_not_repeated() -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_url("https://fno.example.com/?sig=fake-signature")
    assert str(caught.value) == "holds a user name, password or query string (value not shown)"

"""Any value of any one setting gets a ``SettingsError`` naming it, never another exception.

Each test starts from the good settings of ``local.settings.example.json`` and replaces one
setting (every name of ``SETTING_NAMES`` and of the ``IntegrationStorage`` connection, so a new
setting is covered without a change here) with a generated hostile value: any text, control
and format characters, long texts, huge and negative numbers, durations, sizes, schedules,
URLs and GUIDs out of range, and for the route lists JSON junk (deep nesting, wrong types for
every key, long lists, names used twice, NaN and Infinity). Loading then either succeeds or
raises :class:`SettingsError` whose text names the setting and never repeats the value of a
secret or an identity setting. Derandomized, so every run tries the same values; the crashes
found are kept as explicit cases at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config import SETTING_NAMES, Settings, SettingsError
from shared.config.exports import _FIELD_PARSERS as EXPORT_KEYS
from shared.config.import_fields import FIELD_PARSERS as IMPORT_KEYS
from shared.config.package_exports import _FIELD_PARSERS as PACKAGE_EXPORT_KEYS
from shared.config.storage import STORAGE_CONNECTION
from tests.shared.config.test_bad_settings import CONFIDENTIAL

REPO_ROOT = Path(__file__).resolve().parents[3]
GOOD: dict[str, str] = json.loads(
    (REPO_ROOT / "local.settings.example.json").read_text(encoding="utf-8")
)["Values"]
# The identity-based form of the connection, for its own settings to replace.
IDENTITY = {
    **{name: value for name, value in GOOD.items() if name != STORAGE_CONNECTION},
    f"{STORAGE_CONNECTION}__blobServiceUri": "https://acct.blob.core.windows.net",
    f"{STORAGE_CONNECTION}__queueServiceUri": "https://acct.queue.core.windows.net",
    f"{STORAGE_CONNECTION}__tableServiceUri": "https://acct.table.core.windows.net",
    f"{STORAGE_CONNECTION}__credential": "managedidentity",
}
STORAGE_NAMES = (
    STORAGE_CONNECTION,
    *(
        f"{STORAGE_CONNECTION}__{suffix}"
        for suffix in (
            "serviceUri",
            "blobServiceUri",
            "queueServiceUri",
            "tableServiceUri",
            "credential",
            "clientId",
            "accountName",
        )
    ),
)
ROUTE_KEYS = {
    "D365_ROUTES": tuple(IMPORT_KEYS),
    "EXPORT_ROUTES": tuple(EXPORT_KEYS),
    "PACKAGE_EXPORT_ROUTES": tuple(PACKAGE_EXPORT_KEYS),
}
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- scalar values ----------------------------------------------------------------------------
ODD_CHARACTERS = st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Nd", "No", "So"])
TEXT = st.one_of(
    st.text(max_size=40),
    st.text(ODD_CHARACTERS, max_size=20),
    # Long texts, built by repeating a drawn piece (cheap to generate).
    st.builds(
        lambda piece, times: piece * times, st.text(min_size=1, max_size=4), st.integers(1, 40_000)
    ),
)
NUMBER = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.floats().map(repr),
    st.sampled_from(
        ["nan", "inf", "-inf", "1e309", "-0", "0x10", "1_000", "٣", "²", "\uff11", "1e-400"]
    ),
)
UNIT = st.sampled_from(
    [
        "",
        "s",
        "m",
        "h",
        "d",
        "ms",
        "w",
        "D",
        " s",
        "\td",
        "B",
        "KiB",
        "MB",
        "GiB",
        "TiB",
        "PiB",
        "iB",
    ]
)
BIG = st.integers(0, 10**30).map(str)
DURATION = st.one_of(
    st.builds("{}{}".format, NUMBER, UNIT),
    st.builds("P{}DT{}H{}M{}S".format, BIG, BIG, BIG, NUMBER),
    st.builds("PT{}H".format, NUMBER),
    st.builds("{}.{}:{}:{}".format, BIG, BIG, BIG, NUMBER),
)
FIELD = st.one_of(
    st.sampled_from(
        ["*", "?", "L", "W", "#", "MON-FRI", "JAN", "*/0", "5/0", "59-0", "1-2-3", ","]
    ),
    st.builds("*/{}".format, BIG),
    st.builds("{}-{}".format, NUMBER, NUMBER),
    NUMBER,
)
SCHEDULE = st.lists(FIELD, max_size=8).map(" ".join)
URL = st.builds(
    "{}://{}{}{}".format,
    st.sampled_from(["https", "http", "HTTPS", "ftp", ""]),
    st.one_of(
        st.sampled_from(["127.0.0.1", "[::1", "[zz]", "[::1]", "a..b", "-a.com", "a" * 300, "%zz"]),
        st.text(max_size=20),
    ),
    st.one_of(st.just(""), st.builds(":{}".format, NUMBER)),
    st.sampled_from(["", "/", "/x?y", "#f", "/%00"]),
)
GUID = st.one_of(
    st.uuids().map(str),
    st.uuids().map("{{{}}}".format),
    st.uuids().map(lambda guid: str(guid).upper() + "\n"),
)
SCALAR = st.one_of(
    TEXT,
    NUMBER,
    DURATION,
    SCHEDULE,
    URL,
    GUID,
    st.builds("@Microsoft.KeyVault({})".format, TEXT),
    st.builds("'{}'".format, TEXT),
    st.sampled_from(["", " ", "\x00", "never", "off", "entra", "key", "metadata", "\u2028"]),
)

# -- route lists ------------------------------------------------------------------------------
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**25), 10**25),
    st.floats(),
    st.text(max_size=20),
    SCALAR,
)
JSON_VALUE = st.recursive(
    LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _route_objects(setting: str) -> st.SearchStrategy[dict[str, Any]]:
    """A good route of ``setting`` (or a bare object) with keys replaced, removed or added."""
    good = json.loads(GOOD[setting])[0]
    keys = ROUTE_KEYS[setting]
    return st.builds(
        lambda base, changed, removed: {
            **{key: value for key, value in base.items() if key not in removed},
            **changed,
        },
        st.sampled_from([good, {}]),
        st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), JSON_VALUE, max_size=4),
        st.sets(st.sampled_from(keys), max_size=3),
    )


def _route_list(setting: str) -> st.SearchStrategy[str]:
    """JSON text of a route list of ``setting``, or JSON that is not one."""
    objects = _route_objects(setting)
    return st.one_of(
        st.lists(objects, max_size=5).map(lambda items: json.dumps(items, allow_nan=True)),
        # The same route many times: names, prefixes and activity ids used twice.
        st.builds(lambda item, times: json.dumps([item] * times), objects, st.integers(2, 3000)),
        JSON_VALUE.map(lambda value: json.dumps(value, allow_nan=True)),
        st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(1, 200_000)),
        st.builds(lambda depth: '{"a":' * depth + "1" + "}" * depth, st.integers(1, 50)),
        st.sampled_from(["[NaN]", "[Infinity]", "[-Infinity]", "[1e309]", "[-1e309]", "[{}]"]),
        st.sampled_from(
            ['[{"name": NaN}]', '[{"max_bytes": 1e309}]', '{"name": "x"}', "]", "[", "null"]
        ),
        st.sampled_from(['[{"name": "a", "name": "b"}]', "[" + "1," * 100_000 + "1]"]),
        TEXT,
    )


def _hostile(name: str) -> st.SearchStrategy[str]:
    return _route_list(name) if name in ROUTE_KEYS else SCALAR


def check(base: dict[str, str], name: str, value: str) -> None:
    """Load ``base`` with ``name`` set to ``value``: a success or a ``SettingsError`` naming it
    (and not repeating the value of a secret or identity setting)."""
    try:
        Settings.from_env({**base, name: value})
    except SettingsError as exc:
        assert name in str(exc), (name, value, exc.problems)
        # Long enough not to be found in the text by chance; the start of a shortened repr too.
        if name in CONFIDENTIAL and len(value.strip()) >= 12:
            assert value.strip() not in str(exc)
            assert repr(value.strip())[1:40] not in str(exc)


@pytest.mark.parametrize("name", SETTING_NAMES)
@FUZZ
@given(data=st.data())
def test_any_value_of_a_setting_is_loaded_or_named(name: str, data: st.DataObject) -> None:
    check(GOOD, name, data.draw(_hostile(name), label=name))


@pytest.mark.parametrize("name", STORAGE_NAMES)
@FUZZ
@given(data=st.data())
def test_any_value_of_the_storage_connection_is_loaded_or_named(
    name: str, data: st.DataObject
) -> None:
    check(GOOD if name == STORAGE_CONNECTION else IDENTITY, name, data.draw(SCALAR, label=name))


def test_both_forms_of_the_connection_load() -> None:
    Settings.from_env(GOOD)
    Settings.from_env(IDENTITY)


# Values the fuzz found crashing, kept so they stay answered whatever the generator draws.
FOUND = [
    # AttributeError ('NoneType' has no 'lower') in the duplicate check of export routes.
    (
        "EXPORT_ROUTES",
        json.dumps([{**json.loads(GOOD["EXPORT_ROUTES"])[0], "activity_id": None}]),
    ),
]


@pytest.mark.parametrize(("name", "value"), FOUND)
def test_a_value_the_fuzz_found_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**GOOD, name: value})
    assert any(problem.startswith(f"{name}[0].") for problem in caught.value.problems)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        (name, key)
        for name in ROUTE_KEYS
        for key, value in json.loads(GOOD[name])[0].items()
        if isinstance(value, str)
    ],
)
def test_a_final_newline_in_a_route_text_is_refused_or_dropped(name: str, key: str) -> None:
    # A regex ending in $ took "USMF\n" for a company and "d365-exports\n" for a container.
    route = json.loads(GOOD[name])[0]
    changed = json.dumps([{**route, key: route[key] + "\n"}])
    try:
        loaded = Settings.from_env({**GOOD, name: changed})
    except SettingsError as exc:
        assert any(problem.startswith(f"{name}[0].{key}: ") for problem in exc.problems)
    else:
        assert "\\n" not in repr(loaded)

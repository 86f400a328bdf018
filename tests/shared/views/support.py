"""What the view tests share: a file enqueued through the real flow, the range refusal's text,
the hostile bodies every route refuses, hostile query parameters."""

from __future__ import annotations

from hypothesis import event
from hypothesis import strategies as st

from shared.tracking import ExportState, TrackingState
from shared.views.response import ApiResponse
from tests.e2e.test_enqueue import VALID
from tests.hostile import TEXTS, token_of, weighted
from tests.shared.conftest import Domain

HOSTILE_BODIES = [
    (b"[" * 100_000, 413, "the body is 100,000 bytes; at most 65,536 bytes (64 KiB) are"),
    (b"[" * 60_000, 400, "the body is not a JSON object: it is nested too deeply (60,000 levels;"),
    (b'{"confirm": "\xff"}', 400, "the body is not a JSON object: it is not UTF-8 text"),
    (b"1" * 5000, 400, "the body is not a JSON object: it holds a number of over 4,300"),
]
"""Bodies no route parses, with the start of the refusal every route gives (body, status, text)."""
OUT_OF_RANGE = (
    "is out of range; expected a date-time from 1601-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
)


DIGITS = st.integers(-(10**30), 10**30).map(str)
_ISO_PIECES = st.sampled_from(
    ["", "Z", "z", "+00:00", "-23:59", "+23:59", "+24:00", ".999999", ".9999999", "T", " "]
)
TIMES = weighted(
    (2, st.datetimes(timezones=st.none() | st.timezones()).map(lambda t: t.isoformat())),
    (
        2,
        st.builds(
            lambda date, piece, time, offset: f"{date}{piece}{time}{offset}",
            st.dates().map(lambda d: d.isoformat()),
            _ISO_PIECES,
            st.times().map(lambda t: t.isoformat()),
            _ISO_PIECES,
        ),
    ),
    (1, st.sampled_from(["0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59+23:59"])),
    (2, TEXTS),
)
"""Date-times of every year and offset, ISO 8601 near-misses, and anything at all."""
_ROW_KEYS = st.from_regex(r"\d{13}-[0-9a-f]{32}|[0-9a-f-]{36}", fullmatch=True) | TEXTS


def _or_hostile(*good: str) -> st.SearchStrategy[str]:
    return weighted((2, st.sampled_from(good)), (1, TEXTS))


_PARAM_VALUES = {
    "since": TIMES,
    "until": TIMES,
    "limit": weighted((1, DIGITS), (1, TEXTS)),
    "state": _or_hostile(*(s.value for s in (*TrackingState, *ExportState))),
    "route": _or_hostile("customers"),
    "company": _or_hostile("USMF", "usmf"),
    "prefix": _or_hostile("customers/", "/customers/USMF"),
    "blob": _or_hostile("customers/USMF/file.xml", "d365-inbound/a.xml"),
    "continuation": weighted((2, _ROW_KEYS.map(token_of)), (1, TEXTS)),
    "direction": _or_hostile("import", "export"),
    "person": TEXTS,
    "action": _or_hostile("resubmit"),
    "interval": _or_hostile("hour"),
    "code": TEXTS,
}


def query_params(*names: str) -> st.SearchStrategy[dict[str, str]]:
    """Query parameters of a route taking ``names``: each absent, valid-looking or anything,
    and one time in five a parameter the route does not take."""
    taken = st.fixed_dictionaries(
        {}, optional={name: _PARAM_VALUES[name] for name in (*names, "code")}
    )
    unknown = st.builds(lambda params, name, value: {**params, name: value}, taken, TEXTS, TEXTS)
    return weighted((4, taken), (1, unknown))


def assert_answered_or_refused(response: ApiResponse, *refusals: int) -> None:
    """``response`` is a 200, or one of ``refusals`` with an error text (never a 5xx); the
    statuses show in ``--hypothesis-show-statistics``."""
    event(f"status {response.status}")
    assert response.status in (200, *refusals), response.body
    if response.status != 200:
        assert response.body["error"].strip()


def enqueued(domain: Domain, path: str = "customers/USMF/file.xml") -> str:
    """The F&O message id of a file at ``path`` once delivered and enqueued."""
    blob = domain.upload(path, VALID)
    record = domain.deliver(blob)
    assert record is not None
    assert record.message_id
    return record.message_id

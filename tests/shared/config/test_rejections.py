"""Reject reasons: the values stored on tracking rows and blob metadata."""

from __future__ import annotations

from shared.config import RejectReason


def test_reject_reasons_cover_the_enqueuer_too() -> None:
    assert {r.name for r in RejectReason} == {
        "NO_ROUTE",
        "BAD_NAME",
        "BAD_COMPANY",
        "EXTENSION_NOT_ALLOWED",
        "ROUTE_DISABLED",
        "EMPTY_FILE",
        "TOO_LARGE",
        "NAME_TOO_LONG",
        "SUPERSEDED",
        "DELETED",
    }
    assert RejectReason("NoRoute") is RejectReason.NO_ROUTE
    assert isinstance(RejectReason.TOO_LARGE, str)

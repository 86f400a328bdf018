"""Fake values for tests, in one place. They look fake on purpose; none is a real secret."""

from __future__ import annotations

from datetime import UTC, datetime

TENANT_ID = "faketenant"
CLIENT_ID = "00000000-0000-0000-0000-0000000000c1"
CLIENT_SECRET = "fake-secret-not-real"
# An app registered in the tenant but on no job's authorization policy.
OTHER_CLIENT_ID = "00000000-0000-0000-0000-0000000000c2"
OTHER_CLIENT_SECRET = "fake-other-secret-not-real"

CUSTOMERS_ACTIVITY_ID = "00000000-0000-0000-0000-00000000a001"
CUSTOMERS_ENTITY = "CustomersV3"
GENERAL_JOURNAL_ACTIVITY_ID = "00000000-0000-0000-0000-00000000a002"
GENERAL_JOURNAL_ENTITY = "General journal"
PACKAGE_ACTIVITY_ID = "00000000-0000-0000-0000-00000000a003"
EXPORT_ACTIVITY_ID = "00000000-0000-0000-0000-00000000a004"
COMPANY = "USMF"


def daily_far_from_now() -> str:
    """A daily NCRONTAB schedule whose slot is about twelve hours from now, either way.

    A test that moves its clock on by an hour, or runs for minutes, never meets the next
    slot; a midnight schedule did, in a CI run started at 23:52.
    """
    hour = (datetime.now(UTC).hour + 12) % 24
    return f"0 0 {hour} * * *"

"""Fake values for tests, in one place. They look fake on purpose; none is a real secret."""

from __future__ import annotations

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

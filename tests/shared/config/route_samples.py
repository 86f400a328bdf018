"""Sample import routes shared by the route tests."""

from __future__ import annotations

import json
from typing import Any

from shared.config import ImportRoutes

CUSTOMERS_ID = "aaaaaaaa-0000-4000-8000-000000000001"
JOURNAL_ID = "aaaaaaaa-0000-4000-8000-000000000002"
PACKAGE_ID = "aaaaaaaa-0000-4000-8000-000000000003"


def route_dict(**changes: Any) -> dict[str, Any]:
    """The customers route as ``D365_ROUTES`` holds it, with ``changes`` (``...`` removes a
    key)."""
    good = {
        "name": "customers",
        "prefix": "customers/{company}/",
        "activity_id": CUSTOMERS_ID,
        "entity": "CustomersV3",
    }
    return {key: value for key, value in {**good, **changes}.items() if value is not ...}


def table_of(*routes: dict[str, Any]) -> ImportRoutes:
    """The routes read as ``D365_ROUTES`` is read."""
    return ImportRoutes.from_json(json.dumps(list(routes)))

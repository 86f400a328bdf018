"""The running app of the end-to-end tests, for test_access.py (GET /api/health's probe)."""

from __future__ import annotations

from tests.e2e.conftest import app, app_factory  # noqa: F401 - fixtures used by test_access.py

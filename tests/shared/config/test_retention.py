"""The RETENTION_* settings: days or never, the daily schedule, a budget under functionTimeout."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from shared.config import Settings
from shared.config.retention import RetentionSettings
from tests.shared.config.test_settings import _env


def test_defaults_keep_records_and_exports_90_days_and_audit_rows_a_year() -> None:
    retention = Settings.from_env(_env()).retention
    assert retention == RetentionSettings(90, 90, 365, "0 30 2 * * *", timedelta(minutes=5))
    assert retention.lease_span == timedelta(minutes=5, seconds=30)


def test_never_keeps_a_kind_for_ever_in_any_case() -> None:
    retention = Settings.from_env(
        _env(
            RETENTION_RECORDS_DAYS="never",
            RETENTION_EXPORTS_DAYS="Never",
            RETENTION_AUDIT_DAYS="3650",
            RETENTION_SCHEDULE="0 0 3 * * 0",
            RETENTION_BUDGET="90s",
        )
    ).retention
    assert retention.as_dict() == {
        "records_days": None,
        "exports_days": None,
        "audit_days": 3650,
        "schedule": "0 0 3 * * 0",
        "budget_seconds": 90,
    }


def test_without_host_json_the_budget_is_bounded_only_by_its_range(tmp_path: Path) -> None:
    settings = Settings.from_env(_env(RETENTION_BUDGET="1h"), app_root=tmp_path)
    assert settings.retention.budget == timedelta(hours=1)

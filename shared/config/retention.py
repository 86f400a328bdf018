"""The ``RETENTION_*`` settings: how long final records are kept, and when they are deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.config.ncrontab import parse_ncrontab
from shared.config.parsers import InvalidValueError, format_duration, parse_whole_number
from shared.config.reader import SettingsReader

__all__ = [
    "AUDIT_DAYS_SETTING",
    "BUDGET_SETTING",
    "EXPORTS_DAYS_SETTING",
    "RECORDS_DAYS_SETTING",
    "SCHEDULE_SETTING",
    "RetentionSettings",
    "read_retention",
]

RECORDS_DAYS_SETTING = "RETENTION_RECORDS_DAYS"
EXPORTS_DAYS_SETTING = "RETENTION_EXPORTS_DAYS"
AUDIT_DAYS_SETTING = "RETENTION_AUDIT_DAYS"
SCHEDULE_SETTING = "RETENTION_SCHEDULE"
BUDGET_SETTING = "RETENTION_BUDGET"

_NEVER = "never"
_MAX_DAYS = 36_500
_SECOND = timedelta(seconds=1)
_HOUR = timedelta(hours=1)
# A run's lease outlives its budget by this much: the last batch in flight, then the release.
_RUN_MARGIN = timedelta(seconds=30)


@dataclass(frozen=True)
class RetentionSettings:
    """How many days each kind of row is kept once final (None: for ever), and the daily run.

    :ivar records_days: final file records, with their index rows and overflow blobs.
    :ivar exports_days: acknowledged export records.
    :ivar audit_days: audit rows (the audit trail's own store deletes them).
    :ivar schedule: NCRONTAB of the ``retention`` timer.
    :ivar budget: a run starts no new batch after this.
    """

    records_days: int | None = 90
    exports_days: int | None = 90
    audit_days: int | None = 365
    schedule: str = "0 30 2 * * *"
    budget: timedelta = timedelta(minutes=5)

    @property
    def lease_span(self) -> timedelta:
        """How long a run holds the retention lease at most: its budget, then a margin."""
        return self.budget + _RUN_MARGIN

    def as_dict(self) -> dict[str, int | str | None]:
        """A JSON-ready description (None days: kept for ever)."""
        return {
            "records_days": self.records_days,
            "exports_days": self.exports_days,
            "audit_days": self.audit_days,
            "schedule": self.schedule,
            "budget_seconds": int(self.budget.total_seconds()),
        }


def parse_days(raw: str) -> int | None:
    """A retention in days, 1 to 36500, or ``never`` (None: kept for ever).

    :raises InvalidValueError: anything else; 0 is refused, as it would delete every final
        record at the next run.
    """
    if raw.lower() == _NEVER:
        return None
    if raw == "0":
        raise InvalidValueError(
            raw, "would delete every final row at the next run; write never to keep them for ever"
        )
    return parse_whole_number(raw, minimum=1, maximum=_MAX_DAYS)


def _days(reader: SettingsReader, name: str, default: int | None) -> int | None:
    return reader.parsed(
        name, default, parse_days, f"expected days from 1 to {_MAX_DAYS}, e.g. 90, or never"
    )


def read_retention(reader: SettingsReader, function_limit: timedelta | None) -> RetentionSettings:
    """Read the ``RETENTION_*`` settings (defaults: :class:`RetentionSettings`'); problems are
    noted on ``reader``.

    :param function_limit: ``functionTimeout`` of ``host.json`` (None: no limit), which a run
        and its margin must stay under.
    """
    defaults = RetentionSettings()
    settings = RetentionSettings(
        records_days=_days(reader, RECORDS_DAYS_SETTING, defaults.records_days),
        exports_days=_days(reader, EXPORTS_DAYS_SETTING, defaults.exports_days),
        audit_days=_days(reader, AUDIT_DAYS_SETTING, defaults.audit_days),
        schedule=reader.parsed(
            SCHEDULE_SETTING,
            defaults.schedule,
            lambda raw: parse_ncrontab(raw).expression,
            "e.g. '0 30 2 * * *' runs every day at 02:30 UTC",
        ),
        budget=reader.duration(BUDGET_SETTING, defaults.budget, minimum=_SECOND, maximum=_HOUR),
    )
    if function_limit is not None and settings.lease_span >= function_limit:
        reader.problem(
            BUDGET_SETTING,
            f"{format_duration(settings.budget)} plus {format_duration(_RUN_MARGIN)} for the "
            "last batch is not shorter than functionTimeout in host.json "
            f"({format_duration(function_limit)}): the host would stop a run mid-batch; lower "
            f"{BUDGET_SETTING} or raise functionTimeout",
        )
    return settings

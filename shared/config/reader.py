"""Reading app settings from one environment, collecting every problem into one error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TypeVar

from shared.config.parsers import (
    DURATION_FORMS,
    InvalidValueError,
    byte_size_form,
    format_duration,
    parse_byte_size,
    parse_duration,
    parse_whole_number,
)
from shared.errors import AppError

__all__ = ["SettingsError", "SettingsReader", "quotes_problem"]

_T = TypeVar("_T")
_KEY_VAULT_REFERENCE = "@microsoft.keyvault("


class SettingsError(AppError, ValueError):
    """The app settings are invalid; ``problems`` lists every problem, one per entry.

    The text names settings and expected forms; it never holds the value of a secret or of an
    identity setting, so it is safe to show.
    """

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"{count} invalid app setting{'s' if count != 1 else ''}:\n{lines}")


class SettingsReader:
    """Reads settings from one environment and collects every problem found.

    :param environ: the app settings (``os.environ`` in the app).
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def get(self, name: str) -> str | None:
        """The setting's value, stripped; None when absent or blank."""
        value = (self.environ.get(name) or "").strip()
        return value or None

    def problem(self, name: str, text: str) -> None:
        """Note a problem of setting ``name``."""
        self.problems.append(f"{name}: {text}")

    def parsed(
        self,
        name: str,
        default: _T,
        parse: Callable[[str], _T],
        expected: str,
        *,
        confidential: bool = False,
    ) -> _T:
        """The setting parsed by ``parse``; ``default`` when unset, or when invalid (noted).

        :keyword confidential: an identity setting: its value is never repeated in a problem.
        """
        raw = self.get(name)
        if raw is None:
            return default
        quoted = quotes_problem(raw)
        if quoted:
            self.problem(name, quoted)
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.problem(name, f"{_reason(exc, confidential=confidential)}; {expected}")
            return default

    def duration(
        self, name: str, default: timedelta, *, minimum: timedelta, maximum: timedelta
    ) -> timedelta:
        """A duration setting, from ``minimum`` to ``maximum``; the range is named when wrong."""
        return self.parsed(
            name,
            default,
            lambda raw: parse_duration(raw, minimum=minimum, maximum=maximum),
            f"expected a duration from {format_duration(minimum)} to "
            f"{format_duration(maximum)}, {DURATION_FORMS}",
        )

    def byte_size(self, name: str, default: int, *, maximum: int, example: str) -> int:
        """A byte size setting up to ``maximum``; ``example`` shows the form in a problem."""
        return self.parsed(
            name,
            default,
            lambda raw: parse_byte_size(raw, maximum=maximum),
            byte_size_form(maximum, example),
        )

    def whole_number(
        self, name: str, default: int, *, minimum: int, maximum: int, expected: str
    ) -> int:
        """A whole number setting from ``minimum`` to ``maximum``; ``expected`` ends a problem."""
        return self.parsed(
            name,
            default,
            lambda raw: parse_whole_number(raw, minimum=minimum, maximum=maximum),
            expected,
        )

    def unresolved_key_vault_reference(self, name: str) -> bool:
        """Note, and return True, when ``name`` holds a Key Vault reference left unresolved."""
        value = self.get(name)
        if value is None or not value.lower().startswith(_KEY_VAULT_REFERENCE):
            return False
        self.problem(
            name,
            "holds a Key Vault reference the platform did not resolve (value not shown); "
            "give the app's identity the 'Key Vault Secrets User' role on the vault and check "
            "the reference's status in the portal",
        )
        return True

    def raise_problems(self) -> None:
        """:raises SettingsError: listing every problem noted, when there is any."""
        if self.problems:
            raise SettingsError(self.problems)


def quotes_problem(raw: str) -> str | None:
    """The problem of a value wrapped in quotes (app settings are taken as typed), or None."""
    if len(raw) > 1 and raw[0] == raw[-1] and raw[0] in "'\"":
        return "is wrapped in quotes; app settings are taken as typed: remove the quotes"
    return None


def _reason(exc: ValueError, *, confidential: bool) -> str:
    if not confidential:
        return str(exc)
    problem = exc.problem if isinstance(exc, InvalidValueError) else "is not valid"
    return f"{problem} (value not shown)"

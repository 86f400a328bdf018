"""App-setting expressions (``%NAME%``) in binding properties, resolved as the host does."""

from __future__ import annotations

import re
from collections.abc import Mapping

_SETTING_REFERENCE = re.compile(r"%([^%]+)%")


class MissingAppSettingError(ValueError):
    """A binding refers to an app setting that is not set."""


def resolve_app_settings(
    text: str, environ: Mapping[str, str], *, function: str, binding_property: str
) -> str:
    """Replace every ``%NAME%`` in ``text`` with the value of the app setting ``NAME``.

    :keyword function: the function whose binding holds ``text``, for the error.
    :keyword binding_property: which property of the binding it is (``blob path``), likewise.
    :raises MissingAppSettingError: a referenced setting is not set; the text names it.
    """

    def _value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise MissingAppSettingError(
                f"app setting {name!r} is not set; function {function!r} needs it for its "
                f"{binding_property} {text!r}: set {name} in local.settings.json (Values) or in "
                "the environment"
            )
        return environ[name]

    return _SETTING_REFERENCE.sub(_value, text)

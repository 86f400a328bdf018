"""The routes' auth level as the Functions host indexes the app: the function key guards them
in ``key`` mode; in ``entra`` mode App Service authentication does, and no key is asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
# Indexes the app in a process of its own: the auth level is fixed at import.
INDEX = """
import json
from function_app import app
levels = {}
for function in app.get_functions():
    trigger = json.loads(function.get_function_json())["bindings"][0]
    if trigger["type"] == "httpTrigger":
        levels[function.get_function_name()] = trigger["authLevel"]
print(json.dumps(levels))
"""


def _levels(http_auth: str | None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "HTTP_AUTH"}
    if http_auth is not None:
        environ["HTTP_AUTH"] = http_auth
    done = subprocess.run(
        [sys.executable, "-c", INDEX], cwd=ROOT, env=environ, capture_output=True, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("http_auth", "level"),
    [
        (None, "FUNCTION"),
        ("key", "FUNCTION"),
        ("entra", "ANONYMOUS"),
        ("Entra", "ANONYMOUS"),
        ("bogus", "FUNCTION"),
    ],
)
def test_every_http_route_takes_the_auth_level_of_the_mode(
    http_auth: str | None, level: str
) -> None:
    levels = _levels(http_auth)

    assert levels
    assert set(levels.values()) == {level}

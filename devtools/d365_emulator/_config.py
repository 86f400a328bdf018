"""The JSON configuration of a standalone emulator: tenant, apps and jobs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._models import App, Job


@dataclass(frozen=True)
class EmulatorConfig:
    """What a jobs file declares."""

    tenant_id: str
    apps: tuple[App, ...]
    jobs: tuple[Job, ...]


def _job(item: dict[str, Any]) -> Job:
    return Job(
        activity_id=item["activity_id"],
        entity=item.get("entity", ""),
        name=item.get("name", ""),
        allowed_client_ids=tuple(item.get("allowed_client_ids", ())),
        enabled=item.get("enabled", True),
        company=item.get("company", "USMF"),
        use_company_from_message=item.get("use_company_from_message", True),
        data_project=item.get("data_project", ""),
    )


def load_config(path: Path) -> EmulatorConfig:
    """Read a jobs file (see jobs.example.json).

    :raises ValueError: the file is not valid JSON or misses a required key.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        apps = tuple(
            App(item["client_id"], item.get("client_secret")) for item in document.get("apps", ())
        )
        jobs = tuple(_job(item) for item in document["jobs"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a valid emulator jobs file ({exc!r})") from exc
    return EmulatorConfig(document.get("tenant_id", "faketenant"), apps, jobs)

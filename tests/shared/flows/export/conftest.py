"""The export flow's fixtures: a route, an exporter of it on Azurite and the emulator, and
the checks its tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from shared.clients.d365 import D365Client, RetryPolicy
from shared.config.exports import ExportRoute, ExportRoutes
from shared.flows.export import Exporter, ExportPolicy
from shared.tracking import ExportState
from tests import fakes
from tests.shared.conftest import Domain

REDELIVERY = 1801
WRITE_TRIES = 3 * 4
"""Tries of one record write: 3 conditional writes (a lost answer is read back), each the
SDK's call with its 3 retries. Failing them all fails the write; the next write goes through."""


BLOCK = 256 * 1024


@pytest.fixture
def route(unique_name: str) -> ExportRoute:
    return ExportRoute(
        name="customers-out",
        activity_id=fakes.EXPORT_ACTIVITY_ID,
        container=f"{unique_name}-exports",
        prefix="out/{date}/",
        extension=".xml",
    )


@pytest.fixture
def exporter(domain: Domain, route: ExportRoute) -> Iterator[Exporter]:
    with make_exporter(domain, route) as built:
        yield built


@contextlib.contextmanager
def make_exporter(domain: Domain, route: ExportRoute, **policy: Any) -> Iterator[Exporter]:
    """An exporter of ``route`` on the domain; ``policy``: ExportPolicy fields to change."""
    client = D365Client(
        domain.context.settings.d365.base_url,
        domain.context.credential,
        retry=RetryPolicy(backoff_base=0.01, backoff_max=0.05, default_retry_after=0.01),
    )
    yield Exporter(
        domain.context.exporter.store,
        client,
        domain.context.blob_service,
        ExportRoutes((route,)),
        policy=ExportPolicy(block_size=BLOCK, blocks_in_flight=2, **policy),
        clock=domain.clock,
    )
    client.close()


def blobs(domain: Domain, route: ExportRoute) -> dict[str, bytes]:
    container = domain.context.blob_service.get_container_client(route.container)
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def downloads(domain: Domain) -> int:
    return sum(1 for r in domain.d365.requests if r.operation == "download" and r.status == 200)


def kept(route: ExportRoute, message_id: str) -> str:
    """Where an unzip route keeps a package it gave up, unopened."""
    return f"pkg/{message_id}/{message_id}.zip"


def given_up_text(route: ExportRoute, message_id: str) -> str:
    return (
        f"Given up: the package is kept unopened as '{route.container}/"
        f"{kept(route, message_id)}', and acknowledged so that F&O stops offering it"
    )


def assert_given_up_and_acked(
    domain: Domain, exporter: Exporter, route: ExportRoute, message_id: str, data: bytes
) -> str:
    """The message is ExportFailed for good, its package kept whole, F&O acknowledged; the
    record's error is returned."""
    record = exporter.store.get(message_id)
    assert record.state is ExportState.EXPORT_FAILED
    assert record.gave_up_at is not None and record.acked_at is not None
    assert record.blobs == (kept(route, message_id),) and record.size == len(data)
    assert [entry[0] for entry in record.history] == ["Dequeued", "ExportFailed", "ExportFailed"]
    assert domain.d365.messages[message_id].state == "Acked"
    mine = {k: v for k, v in blobs(domain, route).items() if k.startswith(f"pkg/{message_id}/")}
    assert mine == {kept(route, message_id): data}
    return record.error or ""


def acked_once(domain: Domain, exporter: Exporter, message_id: str) -> None:
    """The message went the whole way once: one download, its record Acked, F&O told."""
    record = exporter.store.get(message_id)
    assert record is not None and record.state is ExportState.ACKED, record
    assert [entry[0] for entry in record.history][-2:] == ["Downloaded", "Acked"]
    assert domain.d365.messages[message_id].state == "Acked"
    assert downloads(domain) == 1

"""The package path of the enqueuer and the poller, on Azurite and the emulator: the
enqueuer and poller with a package importer and follower, and what the tests count."""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError

from shared.clients.d365 import D365Client, RetryPolicy
from shared.config.routes import ImportRoutes
from shared.flows.enqueue import Enqueuer
from shared.flows.package.follow import ImportFollower
from shared.flows.package.importer import PackageImporter
from shared.flows.policies import EnqueuePolicy, PackagePolicy, PollPolicy
from shared.flows.poll import Poller
from shared.flows.resubmit import Resubmitter
from shared.tracking import Actor, TrackedFile
from tests import package_files
from tests.e2e.conftest import TEMPLATES
from tests.shared.conftest import FAST, Domain


@dataclass
class Packaged:
    """The domain's enqueuer and poller with the package path."""

    domain: Domain
    enqueuer: Enqueuer
    poller: Poller
    importer: PackageImporter
    follower: ImportFollower

    def upload_template(self, data: bytes | None = None) -> None:
        container = self.domain.context.blob_service.get_container_client(TEMPLATES)
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        container.upload_blob(
            f"{self.domain.folder}/customers.zip",
            package_files.template() if data is None else data,
            overwrite=True,
        )

    def send(self, path: str, data: bytes) -> TrackedFile:
        blob = self.domain.upload(path, data)
        client = self.domain.context.blob_service.get_blob_client("d365-inbound", blob)
        record = self.enqueuer.handle(client)
        assert record is not None
        return record

    def until_final(self, record: TrackedFile, *, ticks: int = 30) -> TrackedFile:
        for _ in range(ticks):
            current = self.domain.context.store.get(record.row_key)
            assert current is not None
            if current.state.is_terminal and not current.archive_pending:
                return current
            self.domain.clock.advance(timedelta(seconds=3))
            self.domain.d365.clock.advance(3)
            self.poller.tick()
        current = self.domain.context.store.get(record.row_key)
        raise AssertionError(f"not final: {current!r} {current and current.last_error}")


def build_packaged(
    domain: Domain,
    *,
    read_timeout: float = 30.0,
    routes: ImportRoutes | None = None,
    **policy: Any,
) -> Packaged:
    """The package path of ``domain``; ``policy``: EnqueuePolicy fields to override."""
    context = domain.context
    settings = context.settings
    client = D365Client(
        settings.d365.base_url,
        context.credential,
        read_timeout=read_timeout,
        retry=RetryPolicy(backoff_base=0.01, backoff_max=0.05, default_retry_after=0.01),
        sas_hosts=settings.d365.sas_hosts,
    )
    package_policy = PackagePolicy(
        lease_span=timedelta(seconds=read_timeout + 5),
        error_file_pause=0.05,
        first_poll_delay=timedelta(seconds=1),
    )
    importer = PackageImporter(
        context.store, client, context.blob_service, policy=package_policy, clock=domain.clock
    )
    follower = ImportFollower(
        context.store,
        client,
        errors_container=context.blob_service.get_container_client(settings.errors_container),
        policy=package_policy,
    )
    enqueuer = Enqueuer(
        context.store,
        client,
        routes or settings.routes,
        context.inbound,
        policy=EnqueuePolicy(
            **{
                "claim_lease": timedelta(minutes=10),
                "answer_timeout": timedelta(seconds=30),
                "first_poll_delay": timedelta(seconds=1),
                "retry": FAST,
                "max_pending_age": timedelta(hours=1),
                **policy,
            }
        ),
        clock=domain.clock,
        packages=importer,
    )
    poller = Poller(
        context.store,
        client,
        enqueuer,
        context.inbound,
        policy=PollPolicy(
            backoff=FAST, lease_margin=timedelta(seconds=5), max_pending_age=timedelta(hours=1)
        ),
        clock=domain.clock,
        packages=follower,
    )
    return Packaged(domain, enqueuer, poller, importer, follower)


@pytest.fixture
def packaged(domain: Domain) -> Iterator[Packaged]:
    built = build_packaged(domain)
    built.domain.d365.knobs.package_run_seconds = 1
    # "Still generating" for 0.2 s, within the importer's 10 reads 0.05 s apart.
    built.domain.d365.knobs.error_keys_seconds = 0.2
    yield built


def imports(packaged: Packaged) -> int:
    return packaged.domain.d365.packages.import_calls


_UPLOADS = frozenset({"blob_put", "blob_block", "blob_block_list"})


def puts(packaged: Packaged) -> list[int | None]:
    """The statuses of the package upload's PUTs (blocks, block list) the emulator answered."""
    return [r.status for r in packaged.domain.d365.requests if r.operation in _UPLOADS]


def nothing_sent(packaged: Packaged) -> bool:
    """No GetAzureWriteUrl, no PUT, no ImportFromPackage reached the emulator."""
    operations = {r.operation for r in packaged.domain.d365.requests}
    return not operations & {"GetAzureWriteUrl", "blob_put", "ImportFromPackage"}


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def resubmit(packaged: Packaged, record: TrackedFile, *, confirm: bool = False) -> TrackedFile:
    """Resubmit ``record`` (confirmed or not); the new version's record."""
    context = packaged.domain.context
    resubmitter = Resubmitter(
        context.store, packaged.enqueuer, context.inbound, context.blob_service, context.audit
    )
    result = resubmitter.resubmit(
        record.row_key, request_id="again", actor=Actor.function_key(), confirm=confirm
    )
    assert result.resubmitted is not None
    assert result.original.resubmitted_as == result.resubmitted.row_key
    return result.resubmitted

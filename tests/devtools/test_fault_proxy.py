"""The fault proxy in front of the session's Azurite, observed through the real Storage SDKs."""

from __future__ import annotations

import contextlib
import http.client
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import (
    TableClient,
    TableSasPermissions,
    TableServiceClient,
    UpdateMode,
    generate_table_sas,
)
from azure.storage.blob import BlobServiceClient, LinearRetry

from devtools.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite
from devtools.fault_proxy import (
    SERVER_BUSY_MESSAGE,
    WRITE_METHODS,
    Exchange,
    FaultKind,
    FaultPlan,
    FaultProxy,
    StorageService,
)

TABLE_ONLY = frozenset({StorageService.TABLE})
CONNECTION_ERRORS = (ServiceRequestError, ServiceResponseError)


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    """A proxy with no faults yet; tests set the plan."""
    with FaultProxy.for_azurite(azurite, seed=1) as instance:
        yield instance


@pytest.fixture
def direct_table(azurite: Azurite, unique_name: str) -> Iterator[TableClient]:
    """A fresh table, reached directly (no proxy)."""
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        table = service.create_table(unique_name)
        yield table


def proxied_table(proxy: FaultProxy, name: str, *, retry_total: int = 0) -> TableClient:
    """The table through the proxy; no retries unless asked, so each fault reaches the test."""
    return TableClient.from_connection_string(
        proxy.connection_string, name, retry_total=retry_total
    )


def entity(row: str, value: int = 1) -> dict[str, object]:
    """A small entity in partition p."""
    return {"PartitionKey": "p", "RowKey": row, "value": value}


def test_passes_table_and_blob_traffic_through_unchanged(
    proxy: FaultProxy, direct_table: TableClient, unique_name: str
) -> None:
    table = proxied_table(proxy, direct_table.table_name)
    table.create_entity(entity("a", 7))
    assert table.get_entity("p", "a")["value"] == 7
    with pytest.raises(ResourceNotFoundError, match="The specified resource does not exist"):
        table.get_entity("p", "missing")  # Azurite answers errors with chunked bodies
    blobs = BlobServiceClient.from_connection_string(
        proxy.connection_string, max_single_put_size=1024 * 1024
    )
    container = blobs.create_container(unique_name)
    data = bytes(range(256)) * 20_000  # 5 MB: staged in blocks
    container.upload_blob("a/b.bin", data)
    assert container.download_blob("a/b.bin").readall() == data

    counts = proxy.counts()
    assert counts.failures == 0
    assert counts.requests_by_service[StorageService.TABLE] == 3
    assert counts.requests_by_service[StorageService.BLOB] >= 5


def test_relays_a_table_batch_as_bytes(proxy: FaultProxy, direct_table: TableClient) -> None:
    table = proxied_table(proxy, direct_table.table_name)
    table.submit_transaction([("create", entity("one")), ("create", entity("two"))])
    assert sorted(e["RowKey"] for e in direct_table.list_entities()) == ["one", "two"]


def test_keeps_client_connections_alive(proxy: FaultProxy) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port(StorageService.BLOB))
    statuses = []
    sockets = set()
    for _ in range(3):
        connection.request("GET", f"/{ACCOUNT_NAME}?comp=list")
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
        sockets.add(id(connection.sock))
    connection.close()
    assert len(statuses) == 3
    assert len(sockets) == 1


def test_relays_chunked_bodies_both_ways(azurite: Azurite, direct_table: TableClient) -> None:
    seen: list[Exchange] = []
    sas = generate_table_sas(
        AzureNamedKeyCredential(ACCOUNT_NAME, ACCOUNT_KEY),
        direct_table.table_name,
        permission=TableSasPermissions(add=True, read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json;odata=nometadata",
        "DataServiceVersion": "3.0",
    }

    def chunks(row: str) -> Iterator[bytes]:
        # A generator body goes out with Transfer-Encoding: chunked.
        yield from (b'{"PartitionKey": "p", ', f'"RowKey": "{row}"}}'.encode())

    with (
        FaultProxy.for_azurite(azurite, observer=seen.append) as proxy,
        requests.Session() as session,
    ):
        url = f"http://127.0.0.1:{proxy.port(StorageService.TABLE)}/{ACCOUNT_NAME}"
        url += f"/{direct_table.table_name}?{sas}"
        first = session.post(url, data=chunks("one"), headers=headers, timeout=10)
        second = session.post(url, data=chunks("two"), headers=headers, timeout=10)
    # Azurite answers inserts with a chunked body too.
    assert first.headers["Transfer-Encoding"] == "chunked"
    assert first.json()["RowKey"] == "one"
    assert second.status_code == 201
    assert [e.request_body for e in seen] == [
        b'{"PartitionKey": "p", "RowKey": "one"}',
        b'{"PartitionKey": "p", "RowKey": "two"}',
    ]
    assert sorted(e["RowKey"] for e in direct_table.list_entities()) == ["one", "two"]


def test_server_busy_answers_503_with_the_service_error_body(
    proxy: FaultProxy, direct_table: TableClient, unique_name: str
) -> None:
    proxy.plan = FaultPlan(server_busy=1.0)
    table = proxied_table(proxy, direct_table.table_name)
    with pytest.raises(HttpResponseError) as table_error:
        table.create_entity(entity("busy"))
    blobs = BlobServiceClient.from_connection_string(proxy.connection_string, retry_total=0)
    with pytest.raises(HttpResponseError) as blob_error:
        blobs.get_container_client(unique_name).upload_blob("x.txt", b"abc")
    with pytest.raises(HttpResponseError) as head_error:
        blobs.get_blob_client(unique_name, "x.txt").get_blob_properties()

    for error in (table_error.value, blob_error.value, head_error.value):
        assert error.status_code == 503
        assert error.response is not None
        assert error.response.headers["x-ms-error-code"] == "ServerBusy"
    assert SERVER_BUSY_MESSAGE in str(table_error.value)
    assert SERVER_BUSY_MESSAGE in str(blob_error.value)
    assert list(direct_table.list_entities()) == []  # Azurite never saw it
    assert proxy.counts().faults[FaultKind.SERVER_BUSY] == 3


def test_reset_before_forwarding_never_reaches_azurite(
    proxy: FaultProxy, direct_table: TableClient
) -> None:
    proxy.plan = FaultPlan(reset_before=1.0)
    table = proxied_table(proxy, direct_table.table_name)
    with pytest.raises(CONNECTION_ERRORS, match="reset by peer"):
        table.create_entity(entity("never"))
    assert list(direct_table.list_entities()) == []
    assert proxy.counts().faults[FaultKind.RESET_BEFORE] == 1


def test_reset_after_forwarding_loses_the_acknowledgement(
    proxy: FaultProxy, direct_table: TableClient
) -> None:
    proxy.plan = FaultPlan(reset_after=1.0)
    table = proxied_table(proxy, direct_table.table_name)
    with pytest.raises(CONNECTION_ERRORS, match="reset by peer"):
        table.create_entity(entity("applied", 5))
    assert direct_table.get_entity("p", "applied")["value"] == 5
    assert proxy.counts().faults[FaultKind.RESET_AFTER] == 1


def test_after_a_lost_acknowledgement_the_sdk_retry_meets_its_own_write(
    azurite: Azurite, direct_table: TableClient, unique_name: str
) -> None:
    # Finding 11 of issue 7: the write is applied, the SDK retries it and Azurite refuses
    # the retry, 409 for a create and 412 for a conditional update.
    proxy: FaultProxy

    def lose_one_ack(exchange: Exchange) -> None:
        # Called before the reset reaches the client, so the SDK's retry goes through.
        if exchange.fault is FaultKind.RESET_AFTER:
            proxy.enabled = False

    row = direct_table.create_entity(entity("row"))
    direct_table.get_entity("p", "row")
    with FaultProxy.for_azurite(
        azurite, plan=FaultPlan(reset_after=1.0, methods=WRITE_METHODS), observer=lose_one_ack
    ) as proxy:
        blobs = BlobServiceClient.from_connection_string(
            proxy.connection_string,
            retry_policy=LinearRetry(backoff=0, random_jitter_range=0, retry_total=1),
        )
        BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
            unique_name
        )
        with pytest.raises(ResourceExistsError, match="The specified blob already exists"):
            blobs.get_container_client(unique_name).upload_blob("once.txt", b"first")
        proxy.enabled = True
        table = proxied_table(proxy, direct_table.table_name, retry_total=1)
        with pytest.raises(ResourceModifiedError, match="The update condition specified"):
            table.update_entity(
                entity("row", 2),
                mode=UpdateMode.REPLACE,
                etag=row["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
    assert direct_table.get_entity("p", "row")["value"] == 2
    assert (
        BlobServiceClient.from_connection_string(azurite.connection_string)
        .get_blob_client(unique_name, "once.txt")
        .download_blob()
        .readall()
        == b"first"
    )


def test_the_observer_sees_every_request_with_its_fault(
    azurite: Azurite, direct_table: TableClient
) -> None:
    seen: list[Exchange] = []
    plans = [
        FaultPlan(server_busy=1.0),
        FaultPlan(reset_before=1.0),
        FaultPlan(reset_after=1.0),
        FaultPlan(),
    ]
    with FaultProxy.for_azurite(azurite, observer=seen.append) as proxy:
        table = proxied_table(proxy, direct_table.table_name)
        for index, plan in enumerate(plans):
            proxy.plan = plan
            with contextlib.suppress(HttpResponseError, *CONNECTION_ERRORS):
                table.create_entity(entity(f"o{index}"))
    assert [(e.method, e.status, e.fault) for e in seen] == [
        ("POST", 503, FaultKind.SERVER_BUSY),
        ("POST", None, FaultKind.RESET_BEFORE),
        ("POST", 201, FaultKind.RESET_AFTER),
        ("POST", 201, None),
    ]
    assert all(b'"RowKey": "o' in e.request_body for e in seen)
    assert all(e.started_at <= e.finished_at for e in seen)
    assert sorted(e["RowKey"] for e in direct_table.list_entities()) == ["o2", "o3"]


def test_latency_spikes_delay_but_deliver(proxy: FaultProxy, direct_table: TableClient) -> None:
    proxy.plan = FaultPlan(latency=1.0, latency_seconds=(0.4, 0.4))
    table = proxied_table(proxy, direct_table.table_name)
    started = time.monotonic()
    table.create_entity(entity("slow"))
    assert time.monotonic() - started >= 0.4
    assert direct_table.get_entity("p", "slow")["value"] == 1
    counts = proxy.counts()
    assert counts.faults[FaultKind.LATENCY] == 1
    assert counts.failures == 0


def test_filter_limits_faults_to_table_writes(
    proxy: FaultProxy, direct_table: TableClient, unique_name: str
) -> None:
    direct_table.create_entity(entity("existing"))
    proxy.plan = FaultPlan(server_busy=1.0, services=TABLE_ONLY, methods=WRITE_METHODS)
    table = proxied_table(proxy, direct_table.table_name)
    assert table.get_entity("p", "existing")["value"] == 1
    blobs = BlobServiceClient.from_connection_string(proxy.connection_string, retry_total=0)
    blobs.create_container(unique_name).upload_blob("ok.txt", b"fine")
    with pytest.raises(HttpResponseError, match="ServerBusy"):
        table.upsert_entity(entity("existing", 2))
    counts = proxy.counts()
    assert counts.faults_by_service == {(StorageService.TABLE, FaultKind.SERVER_BUSY): 1}
    assert (counts.exposed, counts.failure_rate) == (1, 1.0)


def test_switched_off_it_counts_but_injects_nothing(
    proxy: FaultProxy, direct_table: TableClient
) -> None:
    proxy.plan = FaultPlan(reset_before=1.0)
    proxy.enabled = False
    table = proxied_table(proxy, direct_table.table_name)
    table.create_entity(entity("calm"))
    counts = proxy.counts()
    assert (counts.requests, counts.exposed, counts.failures) == (1, 0, 0)
    proxy.reset_counts()
    assert proxy.counts().requests == 0


def _fault_pattern(azurite: Azurite, table_name: str, seed: int) -> list[str]:
    outcomes = []
    plan = FaultPlan(server_busy=0.2, reset_before=0.2, reset_after=0.2)
    with FaultProxy.for_azurite(azurite, plan=plan, seed=seed) as proxy:
        table = proxied_table(proxy, table_name)
        for index in range(30):
            try:
                table.upsert_entity(entity(f"r{index}"))
                outcomes.append("ok")
            except HttpResponseError as error:
                outcomes.append(str(error.status_code))
            except CONNECTION_ERRORS:
                outcomes.append("reset")
    return outcomes


def test_the_same_seed_gives_the_same_faults(azurite: Azurite, direct_table: TableClient) -> None:
    first = _fault_pattern(azurite, direct_table.table_name, seed=42)
    assert _fault_pattern(azurite, direct_table.table_name, seed=42) == first
    assert _fault_pattern(azurite, direct_table.table_name, seed=43) != first
    assert {"ok", "503", "reset"} <= set(first)


def test_concurrent_clients_are_counted_exactly(
    proxy: FaultProxy, direct_table: TableClient
) -> None:
    direct_table.submit_transaction([("create", entity(f"c{i}", i)) for i in range(80)])
    proxy.plan = FaultPlan.mixed(0.3, latency=0.05, latency_seconds=(0.01, 0.05))

    def read(index: int) -> int:
        table = proxied_table(proxy, direct_table.table_name, retry_total=10)
        return int(table.get_entity("p", f"c{index}")["value"])

    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(read, range(80)))
    assert values == list(range(80))
    counts = proxy.counts()
    # A read is retried after every 503 and reset, so each failure cost exactly one request.
    assert counts.requests == 80 + counts.failures
    assert counts.requests == counts.requests_by_service[StorageService.TABLE]
    assert all(counts.faults[kind] > 0 for kind in FaultKind)


def test_plan_refuses_fractions_over_one() -> None:
    with pytest.raises(ValueError, match=r"add up to 1\.100; expected at most 1"):
        FaultPlan(server_busy=0.6, reset_after=0.5)
    with pytest.raises(ValueError, match=r"latency=1\.5: expected a fraction from 0 to 1"):
        FaultPlan(latency=1.5)


def test_connection_string_needs_a_started_proxy(azurite: Azurite) -> None:
    with pytest.raises(RuntimeError, match="the fault proxy is not started"):
        _ = FaultProxy.for_azurite(azurite).connection_string

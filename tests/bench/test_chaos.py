"""A small chaos run (bench/chaos.py): storage faults, F&O faults and host kills, then every
uploaded version must be settled, none sent twice, and "outcome unknown" only where a send was
ambiguous."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.chaos import (
    HOST_WARM_UP,
    MIN_FNO_CALLS,
    ChaosOptions,
    ChaosRun,
    EnqueueCall,
    EnqueueLog,
    FileKind,
    FnoFaults,
    Kill,
    PlannedUpload,
    StorageLog,
    UploadedVersion,
    judge,
    plan_uploads,
    run,
    sends_hit_by_kills,
)
from devtools.d365_emulator import Knobs, Message
from devtools.fault_proxy import Exchange, StorageService


@pytest.mark.chaos
@pytest.mark.timeout(600)
def test_a_small_chaos_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report = run(ChaosOptions.small(work_dir=tmp_path), say=lambda _: None)

    details = "\n".join(report.lines())
    assert report.versions == 40, details
    assert report.kills == 3, details
    assert sum(report.storage_faults.values()) > 0, details
    assert sum(report.fno_faults.values()) > 0, details
    assert report.lost == 0, details
    assert report.duplicates == 0, details
    assert report.outcome_unknown <= report.ambiguous_sends, details
    assert report.wrong_outcomes == 0, details


# -- the harness's own judgement, on hand-made outcomes ------------------------------------------

TOKEN = "chaos-token-ab-1-v1"


def _version(
    path: str,
    etag: str,
    *,
    kind: FileKind = FileKind.CUSTOMERS,
    overwritten: bool = False,
    token: str | None = TOKEN,
) -> UploadedVersion:
    upload = PlannedUpload(0.0, path, kind, 1, 1, b"data", token)
    return UploadedVersion(upload, etag, 0.0, overwritten=overwritten)


def _record(path: str, etag: str, state: str, **fields: object) -> dict[str, object]:
    terminal = state not in ("Received", "Enqueued", "Preprocessing", "Processing")
    return {"blob": path, "blob_etag": f'"{etag}"', "state": state, "terminal": terminal} | fields


def _message(message_id: str, state: str = "Processed") -> Message:
    return Message(
        message_id, "a", "CustomersV3", "USMF", None, state, None, (), None, 4, datetime.now(UTC)
    )


def test_plan_mixes_kinds_and_reuploads_earlier_paths() -> None:
    plan = plan_uploads(300, 60.0, random.Random(3), "ab12")
    assert len(plan) == 300
    assert [u.at for u in plan] == sorted(u.at for u in plan)
    firsts = {u.path: u for u in plan if u.version == 1}
    seconds = [u for u in plan if u.version == 2]
    assert len(seconds) == 45
    assert len(firsts) == 255
    for again in seconds:
        first = firsts[again.path]
        if again.after_token is None:
            assert first.at < again.at <= first.at + 3.0
        else:
            # As soon as F&O has the first version, or 20 s after it.
            assert (again.after_token, again.at) == (first.token, first.at + 20.0)
        assert first.kind.is_valid or first.kind is FileKind.EMPTY
        assert again.kind.is_valid and again.data != first.data
    assert 10 < sum(u.after_token is not None for u in seconds) < 35
    tokens = [u.token for u in plan if u.token]
    assert len(set(tokens)) == len(tokens) == sum(1 for u in plan if u.data)
    assert all(u.token.encode() in u.data for u in plan if u.token)
    assert {u.kind for u in plan} == set(FileKind)


def test_an_overwritten_version_nobody_saw_is_settled_unless_f_and_o_got_it() -> None:
    unseen = _version("customers/USMF/a.xml", "0x1", overwritten=True)
    sent = _version("customers/USMF/b.xml", "0x2", overwritten=True, token="chaos-token-ab-2-v1")
    latest = _version("customers/USMF/c.xml", "0x3", token=None)
    outcomes = judge([unseen, sent, latest], [], {"chaos-token-ab-2-v1": [_message("m2")]})
    assert [(o.unseen, o.settled) for o in outcomes] == [
        (True, True),
        (False, False),
        (False, False),
    ]
    assert [o.state for o in outcomes] == ["never seen", "no record", "no record"]


def test_records_match_versions_by_path_and_etag_and_must_be_final() -> None:
    old = _version("journal/a.xml", "0x1", overwritten=True)
    new = _version("journal/a.xml", "0x2")
    records = [
        _record("journal/a.xml", "0x1", "Rejected"),
        _record("journal/a.xml", "0x2", "Enqueued"),
    ]
    first, second = judge([old, new], records, {})
    assert (first.final, first.problem()) == (True, None)
    assert (second.final, second.settled) == (False, False)


def test_wrong_conclusions_are_named() -> None:
    token = TOKEN
    held = {token: [_message("m1", "ProcessedWithErrors")]}
    cases = {
        "no route file ended Processed, not Rejected": (
            _version("x/a.xml", "0x1", kind=FileKind.NO_ROUTE),
            _record("x/a.xml", "0x1", "Processed"),
            {},
        ),
        "valid latest version Rejected: why": (
            _version("c/a.xml", "0x1"),
            _record("c/a.xml", "0x1", "Rejected", last_error="why"),
            {},
        ),
        "record names message m9, which F&O does not hold for this version": (
            _version("c/a.xml", "0x1"),
            _record("c/a.xml", "0x1", "Processed", message_id="m9"),
            held,
        ),
        "F&O holds it (m1) but the record says EnqueueFailed": (
            _version("c/a.xml", "0x1"),
            _record("c/a.xml", "0x1", "EnqueueFailed", last_error="F&O refused it: 400"),
            held,
        ),
        "record says Processed, F&O says ProcessedWithErrors": (
            _version("c/a.xml", "0x1"),
            _record("c/a.xml", "0x1", "Processed", message_id="M1"),
            held,
        ),
    }
    for expected, (version, record, messages) in cases.items():
        (outcome,) = judge([version], [record], messages)
        assert outcome.problem() == expected


def test_outcome_unknown_with_the_file_at_f_and_o_is_not_wrong() -> None:
    token = TOKEN
    record = _record("c/a.xml", "0x1", "EnqueueFailed", last_error="outcome unknown: F&O may ...")
    (outcome,) = judge([_version("c/a.xml", "0x1")], [record], {token: [_message("m1")]})
    assert outcome.outcome_unknown
    assert outcome.problem() is None


def test_a_kill_hits_the_sends_its_host_had_not_finished() -> None:
    kills = [Kill(10.0), Kill(20.0), Kill(100.0)]
    storage = StorageLog()
    storage.reads = [
        (9.0, "died-mid-call"),  # its call never reached the emulator's log
        (9.4, "open"),
        (5.0, "written"),
        (5.0, "unwritten"),
        (8.0, "error-just-before"),
        (-20.0, "error-long-before"),
        (9.8, "read-just-before"),
        (12.0, "next-host"),
        (50.0, "answer-long-unwritten"),
    ]
    storage.writes = [
        (4.9, "written"),
        (7.5, "written"),  # after F&O's answer was recorded: not a send
        (9.0, "marked-just-before"),  # the mark that a send begins, then the kill
        (2.0, "marked-long-before"),
    ]
    storage.first_written = {"m2": 7.0, "m1": 10.2, "m4": 13.5}
    calls = [
        EnqueueCall(started=9.5, ended=10.5, status=200, path="open", message_id="m1"),
        EnqueueCall(started=5.1, ended=6.0, status=200, path="written", message_id="m2"),
        EnqueueCall(started=5.1, ended=6.0, status=200, path="unwritten", message_id="m3"),
        EnqueueCall(started=8.1, ended=8.5, status=503, path="error-just-before"),
        EnqueueCall(started=-19.9, ended=-19.5, status=429, path="error-long-before"),
        EnqueueCall(started=-19.4, ended=-19.0, path="error-long-before", dropped=True),
        EnqueueCall(started=12.1, ended=13.0, status=200, path="next-host", message_id="m4"),
        EnqueueCall(
            started=50.1, ended=51.0, status=200, path="answer-long-unwritten", message_id="m5"
        ),
    ]
    hits = sends_hit_by_kills(kills, storage, calls)
    assert hits.paths == {
        "died-mid-call",
        "open",
        "unwritten",
        "error-just-before",
        "read-just-before",
        "marked-just-before",
    }
    assert (hits.kills_hitting_a_send, hits.sends_hit, hits.flags) == (1, 6, (True, False, False))


def test_the_storage_log_reads_sends_out_of_the_traffic() -> None:
    path = "customers/USMF/a.xml"
    message_id = "8872247b-195a-4f35-aeb2-500b503b2b98"
    log = StorageLog()
    log.watch([path])

    def see(
        service: StorageService,
        method: str,
        target: str,
        body: bytes = b"",
        status: int | None = 200,
    ) -> None:
        log(Exchange(service, method, target, body, status, None, 1.0, 2.0))

    blob, table = StorageService.BLOB, StorageService.TABLE
    see(blob, "GET", f"/devstoreaccount1/d365-inbound/{path}")
    see(blob, "GET", "/devstoreaccount1/d365-inbound?restype=container&comp=list")
    see(blob, "HEAD", f"/devstoreaccount1/d365-inbound/{path}")
    record = f'{{"blob": "{path}", "message_id": "{message_id.upper()}"}}'.encode()
    see(table, "PUT", "/devstoreaccount1/t(PartitionKey='p',RowKey='r')", record)
    other_id = "9972247b-195a-4f35-aeb2-500b503b2b98"
    retried = f'{{"blob": "{path}", "message_id": "{other_id}"}}'.encode()
    see(table, "POST", "/devstoreaccount1/t", retried, status=None)  # never applied
    see(table, "PUT", "/devstoreaccount1/t(PartitionKey='p',RowKey='r')", retried, status=412)
    see(table, "GET", "/devstoreaccount1/t()", record)
    assert log.reads == [(1.0, path)]
    # Every attempt tells the worker was at it; only an applied one puts an id in a table.
    assert log.writes == [(2.0, path)] * 3
    assert log.first_written == {message_id: 2.0}


def test_f_and_o_faults_follow_the_rate_and_the_seed() -> None:
    def draws(seed: int, rate: float) -> list[str]:
        faults = FnoFaults(seed, rate, EnqueueLog())
        knobs = Knobs()
        seen = []
        for _ in range(300):
            before = faults.before_body(knobs, "GetMessageStatus")
            after = faults.after_body(knobs, "GetMessageStatus")
            seen.append(str(before or after or "-"))
        return seen

    assert set(draws(1, 0.0)) == {"-"}
    mixed = draws(1, 0.3)
    assert mixed == draws(1, 0.3)
    assert 0.2 < sum(d != "-" for d in mixed) / len(mixed) < 0.4
    assert {"drop-before-body", "drop-after-body", "throttle", "error"} <= set(mixed)


def test_only_the_calls_made_while_the_faults_are_on_are_counted() -> None:
    faults = FnoFaults(1, 0.3, EnqueueLog())
    faults.enabled = False
    for _ in range(5):
        faults.before_body(Knobs(), "GetMessageStatus")
    assert (faults.calls_seen(), sum(faults.faults.values())) == (0, 0)
    faults.enabled = True
    for _ in range(7):
        faults.before_body(Knobs(), "GetMessageStatus")
    assert faults.calls_seen() == 7


def test_the_chaos_lasts_until_f_and_o_has_seen_calls_under_its_faults() -> None:
    faults = FnoFaults(1, 0.3, EnqueueLog())
    services: Any = SimpleNamespace(emulator=SimpleNamespace(chaos_faults=faults))
    chaos = ChaosRun(ChaosOptions.small())

    def late_calls() -> None:
        time.sleep(0.6)
        for _ in range(MIN_FNO_CALLS):
            faults.before_body(Knobs(), "GetMessageStatus")

    caller = threading.Thread(target=late_calls)
    caller.start()
    chaos._await_fno_calls(services, deadline=time.monotonic() + 30)
    caller.join()
    assert faults.calls_seen() == MIN_FNO_CALLS
    (note,) = chaos.report.notes
    assert note.startswith("faults kept on ")
    assert note.endswith(
        f"s past the planned chaos, until F&O had seen {MIN_FNO_CALLS} calls under them "
        f"(at least {MIN_FNO_CALLS} wanted)"
    )

    idle = FnoFaults(1, 0.3, EnqueueLog())
    services.emulator.chaos_faults = idle
    began = time.monotonic()
    chaos._await_fno_calls(services, deadline=began + 0.5)
    assert 0.5 <= time.monotonic() - began < 5
    assert idle.calls_seen() == 0


def test_a_host_is_killed_once_it_has_begun_work_or_after_its_warm_up() -> None:
    path = "customers/USMF/a.xml"
    storage = StorageLog()
    storage.watch([path])
    ready_at = time.monotonic()
    host = SimpleNamespace(ready_at=ready_at)
    services: Any = SimpleNamespace(storage=storage, host=host)
    chaos = ChaosRun(ChaosOptions.small())

    def claim() -> None:
        time.sleep(0.5)
        body = f'{{"blob": "{path}"}}'.encode()
        at = time.monotonic()
        storage(
            Exchange(StorageService.TABLE, "POST", "/devstoreaccount1/t", body, 202, None, at, at)
        )

    writer = threading.Thread(target=claim)
    writer.start()
    chaos._await_work(services)
    writer.join()
    assert 0.5 <= time.monotonic() - ready_at < HOST_WARM_UP
    assert storage.wrote_since(ready_at)

    services.storage = idle = StorageLog()  # a host with nothing to do...
    host.ready_at = time.monotonic() - HOST_WARM_UP + 0.3  # ...nearly warmed up
    began = time.monotonic()
    chaos._await_work(services)
    assert 0.3 <= time.monotonic() - began < 5
    assert not idle.wrote_since(host.ready_at)

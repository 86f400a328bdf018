"""Ordered routes: each company's files reach F&O one at a time, in the order of their blobs.

Real Azurite, the real emulator; deliveries are made in the order a test chooses (Event Grid
gives no order), and F&O's own record of what it received (``emu.received``) is the judge.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from azure.core.exceptions import AzureError
from azure.data.tables import TableServiceClient

from shared.clients.d365 import external_id_from_header
from shared.config import API_PACKAGE
from shared.flows.line import Verdict, verdict_of
from shared.flows.release import RELEASE_ACTION, ReleaseError, Releaser
from shared.flows.resubmit import Resubmitter
from shared.tracking import (
    IMPORT_CALL_STATUS,
    Actor,
    ActorKind,
    AuditOutcome,
    TrackedFile,
    TrackingState,
)
from shared.views.records import line_json
from tests import fakes
from tests.e2e.test_enqueue import VALID
from tests.shared.conftest import Domain, scheduled

BAD = b"<Document><unclosed"


def _upload_in_order(domain: Domain, folder: str, names: list[str], data: dict | None = None):
    """Upload ``names`` one after the other, a second apart (a blob's creation time counts
    whole seconds): their line order is the list's."""
    blobs = []
    for index, name in enumerate(names):
        if index:
            time.sleep(1.05)
        blobs.append(domain.upload(f"{folder}/USMF/{name}", (data or {}).get(name, VALID)))
    return blobs


def _received(domain: Domain) -> list[str]:
    """The blob names F&O received for the customers job, in its order."""
    return [
        external_id_from_header(m.external_id or "").rsplit("/", 1)[-1]
        for m in domain.d365.received(fakes.CUSTOMERS_ACTIVITY_ID)
    ]


def _tick_until(domain: Domain, blobs: list[str], states: set[TrackingState], ticks=40):
    for _ in range(ticks):
        records = [domain.latest(b) for b in blobs]
        if all(r.state in states and not r.archive_pending for r in records):
            return records
        domain.clock.advance(timedelta(seconds=3))
        domain.poller.tick()
    raise AssertionError([(r.blob, r.state.value) for r in records])


_FINAL = {TrackingState.PROCESSED}


@pytest.mark.policy(order_settle=timedelta(seconds=30))
def test_files_delivered_out_of_order_and_twice_reach_f_and_o_in_blob_order(
    domain: Domain,
) -> None:
    blobs = _upload_in_order(domain, "ordered", ["c.xml", "a.xml", "b.xml"])
    # Event Grid delivers newest first, and each event twice.
    for blob in [*reversed(blobs), *blobs]:
        record = domain.deliver(blob)
        assert record is not None and record.state is TrackingState.WAITING
    assert domain.enqueues() == 0  # nothing goes before the settle window has passed

    _tick_until(domain, blobs, _FINAL)

    assert _received(domain) == ["c.xml", "a.xml", "b.xml"]
    assert domain.enqueues() == 3


def test_an_ordered_file_costs_one_table_write_more_than_a_parallel_one(domain: Domain) -> None:
    """Claim, turn, sending mark, F&O's answer: the turn is the one write an order adds."""
    costs = {}
    table = domain.context.store.table_name
    for route in ("customers", "ordered"):
        blob = domain.upload(f"{route}/USMF/cost.xml", VALID)
        before = len(domain.faults.calls)
        assert domain.deliver(blob).state is TrackingState.ENQUEUED
        calls = domain.faults.calls[before:]
        costs[route] = sum(
            1 for c in calls if "$batch" in c or c.startswith(f"PUT devstoreaccount1/{table}")
        )

    assert costs == {"customers": 3, "ordered": 4}


def test_final_order_sends_the_next_only_once_the_one_before_is_final(domain: Domain) -> None:
    domain.d365.knobs.processing_seconds = 3600  # F&O holds the first file in Processing
    first, second = _upload_in_order(domain, "ordered", ["1.xml", "2.xml"])
    assert domain.deliver(first).state is TrackingState.ENQUEUED
    waiting = domain.deliver(second)

    assert waiting.state is TrackingState.WAITING
    assert waiting.behind == domain.latest(first).row_key
    for _ in range(3):
        domain.clock.advance(timedelta(seconds=3))
        domain.poller.tick()
    assert domain.latest(second).state is TrackingState.WAITING
    assert _received(domain) == ["1.xml"]

    domain.d365.knobs.processing_seconds = 0
    domain.d365.clock.advance(7200)
    _tick_until(domain, [first, second], _FINAL)
    assert _received(domain) == ["1.xml", "2.xml"]


@pytest.mark.policy(order_settle=timedelta(seconds=30))
def test_upload_order_does_not_wait_for_f_and_o_to_finish(domain: Domain) -> None:
    domain.d365.knobs.processing_seconds = 3600  # nothing reaches a final state
    blobs = _upload_in_order(domain, "ordered-up", ["x.xml", "y.xml", "z.xml"])
    for blob in reversed(blobs):
        domain.deliver(blob)
    domain.clock.advance(timedelta(seconds=31))

    domain.poller.tick()

    assert _received(domain) == ["x.xml", "y.xml", "z.xml"]
    assert [domain.latest(b).state for b in blobs] == [TrackingState.ENQUEUED] * 3


def test_a_file_arriving_after_a_newer_one_was_sent_is_sent_next_marked_late(
    domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    older, newer, newest = _upload_in_order(domain, "ordered", ["o.xml", "n.xml", "m.xml"])
    domain.d365.knobs.processing_seconds = 3600
    domain.deliver(newer)  # the older file's event is late: the newer one goes
    domain.deliver(newest)
    with caplog.at_level(logging.WARNING, logger="shared.flows.line"):
        domain.deliver(older)
        domain.d365.knobs.processing_seconds = 0
        domain.d365.clock.advance(7200)
        records = _tick_until(domain, [older, newer, newest], _FINAL)

    assert _received(domain) == ["n.xml", "o.xml", "m.xml"]
    late = records[0]
    assert late.late_after == records[1].row_key
    assert any(
        getattr(r, "event", None) == "line_late" and "o.xml arrived after" in r.getMessage()
        for r in caplog.records
    )


def _blocked_line(domain: Domain) -> tuple[str, str, str]:
    blobs = _upload_in_order(domain, "ordered", ["j1.xml", "j2.xml", "j3.xml"], {"j1.xml": BAD})
    for blob in blobs:
        domain.deliver(blob)
    _tick_until(domain, blobs[:1], {TrackingState.PRE_PROCESSING_ERROR})
    for _ in range(3):
        domain.clock.advance(timedelta(seconds=3))
        domain.poller.tick()
    return blobs[0], blobs[1], blobs[2]


def test_a_failed_file_blocks_its_line_and_says_so(
    domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        blocker, second, third = _blocked_line(domain)

    assert _received(domain) == ["j1.xml"]
    head = domain.latest(blocker)
    for blob in (second, third):
        waiting = domain.latest(blob)
        assert waiting.state is TrackingState.WAITING
        assert waiting.behind == head.row_key
        assert f"waiting behind {blocker} (PreProcessingError)" in waiting.last_error
        assert f"/api/messages/{head.record_id}/release" in waiting.last_error
    finished = [r for r in caplog.records if getattr(r, "event", None) == "file_finished"]
    assert [r.line_blocked for r in finished if getattr(r, "blob", None) == blocker] == [
        f"line ordered/USMF is blocked by {blocker} (PreProcessingError); resubmit it or "
        f"release the line: POST /api/messages/{head.record_id}/release"
    ]


def test_releasing_a_blocked_line_sends_the_files_behind_it_once(domain: Domain) -> None:
    blocker, second, third = _blocked_line(domain)
    releaser = Releaser(
        domain.context.store, domain.enqueuer, domain.context.audit, clock=domain.clock
    )
    key = domain.latest(blocker).row_key

    released = releaser.release(key, request_id="req-1", actor=Actor.function_key())
    again = releaser.release(key, request_id="req-1", actor=Actor.function_key())
    _tick_until(domain, [second, third], _FINAL)

    assert released.released_at is not None and released.release_request == "req-1"
    assert released.released_by == Actor.function_key()
    assert again.released_at == released.released_at
    assert _received(domain) == ["j1.xml", "j2.xml", "j3.xml"]
    with pytest.raises(ReleaseError, match=r"already released past .* by function key") as exc:
        releaser.release(key, request_id="req-2", actor=Actor(ActorKind.USER, "Ada"))
    assert exc.value.status == 409
    # One audit row for the request and its retry, done; the refused other request adds none.
    (entry,) = domain.context.audit.list_entries(action=RELEASE_ACTION).records
    assert (entry.actor, entry.request_id, entry.targets) == (Actor.function_key(), "req-1", (key,))
    assert entry.outcome is AuditOutcome.DONE


def test_a_release_that_died_after_its_audit_row_is_finished_by_the_retry(
    domain: Domain,
) -> None:
    blocker, second, third = _blocked_line(domain)
    key = domain.latest(blocker).row_key
    audit = domain.context.audit
    ada = Actor(ActorKind.USER, "Ada", object_id="0a", provider="aad")
    # The process died between the audit row and the record's write: the row says requested.
    audit.record(RELEASE_ACTION, actor=ada, request_id="req-1", targets=(key,), subject=blocker)

    releaser = Releaser(domain.context.store, domain.enqueuer, audit, clock=domain.clock)
    released = releaser.release(key, request_id="req-1", actor=Actor.function_key())
    _tick_until(domain, [second, third], _FINAL)

    (entry,) = audit.list_entries(action=RELEASE_ACTION).records
    assert (entry.actor, entry.outcome) == (ada, AuditOutcome.DONE)
    assert released.released_by == ada  # who first asked, not the retry's caller
    assert _received(domain) == ["j1.xml", "j2.xml", "j3.xml"]


def test_a_release_that_died_before_its_audit_row_was_marked_done_is_finished_by_the_retry(
    domain: Domain,
) -> None:
    blocker, second, third = _blocked_line(domain)
    key = domain.latest(blocker).row_key
    ada = Actor(ActorKind.USER, "Ada", object_id="0a", provider="aad")
    releaser = Releaser(
        domain.context.store, domain.enqueuer, domain.context.audit, clock=domain.clock
    )
    # The audit outcome row: the one row of the status table created on its own.
    domain.faults.fail("reset", "POST", domain.context.settings.status_table, times=50)

    with pytest.raises(AzureError):
        releaser.release(key, request_id="req-1", actor=ada)
    domain.faults.clear()
    # The release took effect: the record says who asked, the row that it was begun.
    assert domain.latest(blocker).released_by == ada
    (begun,) = domain.context.audit.list_entries().records
    assert (begun.actor, begun.outcome) == (ada, AuditOutcome.REQUESTED)
    _tick_until(domain, [second, third], _FINAL)  # the line goes on meanwhile

    again = releaser.release(key, request_id="req-1", actor=Actor.function_key())

    (entry,) = domain.context.audit.list_entries().records
    assert (entry.row_key, entry.actor, entry.outcome) == (begun.row_key, ada, AuditOutcome.DONE)
    assert again.released_by == ada
    assert _received(domain) == ["j1.xml", "j2.xml", "j3.xml"]


def test_a_release_begun_then_overtaken_by_another_is_refused_on_its_retry(
    domain: Domain,
) -> None:
    blocker, _, _ = _blocked_line(domain)
    key = domain.latest(blocker).row_key
    audit = domain.context.audit
    ada = Actor(ActorKind.USER, "Ada", object_id="0a", provider="aad")
    # Ada's request died after its audit row; another request released the line meanwhile.
    audit.record(RELEASE_ACTION, actor=ada, request_id="req-1", targets=(key,), subject=blocker)
    releaser = Releaser(domain.context.store, domain.enqueuer, audit, clock=domain.clock)
    releaser.release(key, request_id="req-2", actor=Actor.function_key())

    with pytest.raises(ReleaseError, match="already released past") as refused:
        releaser.release(key, request_id="req-1", actor=ada)

    rows = {entry.request_id: entry for entry in audit.list_entries().records}
    assert rows["req-2"].outcome is AuditOutcome.DONE
    assert (rows["req-1"].actor, rows["req-1"].outcome) == (ada, AuditOutcome.REFUSED)
    assert rows["req-1"].detail == str(refused.value)
    assert domain.latest(blocker).release_request == "req-2"


def test_only_the_failed_head_of_a_line_can_be_released(domain: Domain) -> None:
    blocker, second, _ = _blocked_line(domain)
    releaser = Releaser(
        domain.context.store, domain.enqueuer, domain.context.audit, clock=domain.clock
    )

    with pytest.raises(ReleaseError, match="Waiting, still on its way") as waiting:
        releaser.release(domain.latest(second).row_key, request_id="r", actor=Actor.function_key())
    other = domain.upload("customers/USMF/plain.xml", VALID)
    domain.deliver(other)
    with pytest.raises(ReleaseError, match="not a file of an ordered route") as plain:
        releaser.release(domain.latest(other).row_key, request_id="r", actor=Actor.function_key())

    assert (waiting.value.status, plain.value.status) == (409, 409)
    assert domain.latest(blocker).released_at is None


def test_a_resubmitted_blocker_takes_its_place_at_the_head(domain: Domain) -> None:
    blocker, second, third = _blocked_line(domain)
    # The operator fixes the file in F&O's eyes: the copy is processed this time.
    resubmitter = Resubmitter(
        domain.context.store,
        domain.enqueuer,
        domain.context.inbound,
        domain.context.blob_service,
        domain.context.audit,
    )
    domain.d365.set_outcome(fakes.CUSTOMERS_ACTIVITY_ID, "Processed")

    result = resubmitter.resubmit(
        domain.latest(blocker).row_key, request_id="fix-1", actor=Actor.function_key()
    )
    records = _tick_until(domain, [blocker, second, third], _FINAL)

    assert _received(domain) == ["j1.xml", "j1.xml", "j2.xml", "j3.xml"]
    assert records[0].resubmit_of == result.original.row_key
    assert records[0].late_after is None
    # The original no longer holds the line: its copy took its place (and passed).
    original = domain.context.store.get(result.original.row_key)
    assert original is not None and original.resubmitted_as == records[0].row_key
    assert line_json(original)["blocks_line"] is False


@pytest.mark.policy(order_settle=timedelta(seconds=30))
def test_on_failure_continue_goes_on_past_a_failed_file(domain: Domain) -> None:
    blobs = _upload_in_order(domain, "ordered-go", ["k1.xml", "k2.xml"], {"k1.xml": BAD})
    for blob in reversed(blobs):
        domain.deliver(blob)
    domain.clock.advance(timedelta(seconds=31))

    records = _tick_until(
        domain, blobs, {TrackingState.PRE_PROCESSING_ERROR, TrackingState.PROCESSED}
    )

    assert [r.state for r in records] == [
        TrackingState.PRE_PROCESSING_ERROR,
        TrackingState.PROCESSED,
    ]
    assert _received(domain) == ["k1.xml", "k2.xml"]
    assert records[0].line_stops is False


def test_a_hand_over_whose_answer_was_lost_sends_the_file_once(domain: Domain) -> None:
    """The turn's transaction lands and its answer is lost: the SDK's retry meets our own
    write, which the read-back recognises; each file is sent once, in order."""
    first, second = _upload_in_order(domain, "ordered-up", ["h1.xml", "h2.xml"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domain.enqueuer, "_take_turns", lambda *a, **k: None)
        waiting = [domain.deliver(second), domain.deliver(first)]  # out of order
    domain.faults.fail("lost", "POST", "$batch")  # the first hand-over's

    domain.enqueuer.recover(waiting[0])

    assert domain.faults.injected.get("lost") == 1
    assert _received(domain) == ["h1.xml", "h2.xml"]
    assert [domain.latest(b).state for b in (first, second)] == [TrackingState.ENQUEUED] * 2


def test_a_hand_over_that_never_reached_storage_is_made_by_a_later_tick(domain: Domain) -> None:
    """The turn's transaction fails before storage took it (every retry reset): nothing was
    written, the file still waits, and the poller gives it its turn on a later tick."""
    blobs = _upload_in_order(domain, "ordered", ["n1.xml", "n2.xml"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domain.enqueuer, "_take_turns", lambda *a, **k: None)
        for blob in reversed(blobs):
            domain.deliver(blob)
    domain.faults.fail("reset", "POST", "$batch", times=20)

    domain.clock.advance(timedelta(seconds=3))
    domain.poller.tick()
    domain.faults.clear()

    assert [domain.latest(b).state for b in blobs] == [TrackingState.WAITING] * 2
    assert _received(domain) == []
    _tick_until(domain, blobs, _FINAL)
    assert _received(domain) == ["n1.xml", "n2.xml"]


def test_a_worker_that_dies_right_after_the_hand_over_is_recovered(domain: Domain) -> None:
    """The poll that sees h1 final hands the turn to h2 (one transaction), then every call on
    h2's record fails: the worker dies before its send. h2 is ``Received`` under a lease
    nobody renews; recovery sends it once the lease has ended."""
    first, second = _upload_in_order(domain, "ordered", ["h1.xml", "h2.xml"])
    domain.d365.knobs.processing_seconds = 3600
    domain.deliver(first)
    key = domain.deliver(second).row_key
    domain.d365.knobs.processing_seconds = 0
    domain.d365.clock.advance(7200)

    def die() -> None:  # from h2's sending mark on (after the hand-over), h2's calls fail
        domain.faults.fail("reset", "PUT", key, times=1000)
        domain.faults.fail("reset", "GET", key, times=1000)

    domain.faults.meanwhile("PUT", key, die)

    domain.clock.advance(timedelta(seconds=3))
    domain.poller.tick()
    domain.faults.clear()

    taken = domain.latest(second)
    assert taken.state is TrackingState.RECEIVED
    assert taken.turn_at is not None and taken.send_started_at is None
    assert domain.context.store.lines.head(taken.line).head == key
    assert _received(domain) == ["h1.xml"]
    domain.clock.advance(timedelta(minutes=11))  # past the claim lease
    _tick_until(domain, [first, second], _FINAL)
    assert _received(domain) == ["h1.xml", "h2.xml"]


def test_a_turn_taken_by_another_worker_meanwhile_is_not_taken_twice(domain: Domain) -> None:
    """Just before this worker's hand-over transaction goes out, another worker hands the
    same turn on (and the next): this one's write fails whole on the head's row, and each
    file is sent once, in order."""
    blobs = _upload_in_order(domain, "ordered-up", ["r1.xml", "r2.xml"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domain.enqueuer, "_take_turns", lambda *a, **k: None)
        first, _ = (domain.deliver(blob) for blob in blobs)
    others: list[TrackedFile] = []
    domain.faults.meanwhile("POST", "$batch", lambda: others.append(domain.enqueuer.recover(first)))

    mine = domain.enqueuer.recover(first)

    assert others and others[0].state is TrackingState.ENQUEUED
    assert mine.state is TrackingState.ENQUEUED
    assert _received(domain) == ["r1.xml", "r2.xml"]
    assert [domain.latest(b).state for b in blobs] == [TrackingState.ENQUEUED] * 2


def test_a_turn_decided_on_a_stale_head_is_not_taken(domain: Domain) -> None:
    """Worker A reads the line (no head; p2 the only file waiting) and hands p2 the turn. Just
    before its transaction goes out, the older p1 arrives and worker B gives p1 the turn and
    sends it. A's transaction names the head as A read it, so it fails whole: p2 waits
    behind p1 instead of overtaking it while F&O still processes p1."""
    first, second = _upload_in_order(domain, "ordered", ["p1.xml", "p2.xml"])
    domain.d365.knobs.processing_seconds = 3600
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domain.enqueuer, "_take_turns", lambda *a, **k: None)
        waiting = domain.deliver(second)

    def worker_b() -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(domain.enqueuer, "_take_turns", lambda *a, **k: None)
            late = domain.deliver(first)
        domain.enqueuer.recover(late)

    domain.faults.meanwhile("POST", "$batch", worker_b)

    domain.enqueuer.recover(waiting)

    assert _received(domain) == ["p1.xml"]
    assert domain.latest(first).state is TrackingState.ENQUEUED
    assert domain.latest(second).state is TrackingState.WAITING
    assert domain.context.store.lines.head(waiting.line).head == domain.latest(first).row_key


def test_two_workers_handing_the_same_line_on_at_once_send_each_file_once_in_order(
    domain: Domain,
) -> None:
    blobs = _upload_in_order(domain, "ordered-up", ["p1.xml", "p2.xml", "p3.xml", "p4.xml"])
    domain.d365.knobs.processing_seconds = 3600
    waiting = []
    with pytest.MonkeyPatch.context() as patch:
        # Claimed, not yet handed on: every file waits in the line.
        patch.setattr(domain.enqueuer, "_take_turns", lambda *a, **k: None)
        for blob in blobs:
            waiting.append(domain.deliver(blob))
    assert [w.state for w in waiting] == [TrackingState.WAITING] * 4
    errors: list[BaseException] = []

    def work(record: TrackedFile) -> None:
        try:
            domain.enqueuer.recover(record)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in [*waiting, *waiting]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert _received(domain) == ["p1.xml", "p2.xml", "p3.xml", "p4.xml"]
    assert all(scheduled(domain.context.store, domain.latest(b).record_id) for b in blobs)


def test_upload_order_passes_a_package_import_only_once_fno_answered_about_it(
    domain: Domain,
) -> None:
    """A package import's execution id is written before ImportFromPackage is called, and
    cleared when F&O refuses the call (429, 503): the next file must not go meanwhile."""
    blob = domain.upload("ordered-up/USMF/p.xml", VALID)
    sent = domain.deliver(blob)
    assert sent is not None and verdict_of(sent) is Verdict.PASSED
    calling = replace(
        sent,
        api=API_PACKAGE,
        state=TrackingState.IMPORTING,
        message_id=None,
        execution_id=f"ordered-up-{sent.record_id}",
        d365_status=IMPORT_CALL_STATUS,
    )

    assert verdict_of(calling) is Verdict.BUSY
    assert verdict_of(replace(calling, d365_status="Executing")) is Verdict.PASSED
    refused = replace(calling, state=TrackingState.RECEIVED, execution_id=None)
    assert verdict_of(refused) is Verdict.BUSY


def test_a_waiting_file_deleted_or_overwritten_does_not_block_its_line(domain: Domain) -> None:
    """Found when its turn comes: ``Rejected`` (deleted, or superseded by the new version,
    which waits in the line on its own), and the line goes on."""
    domain.d365.knobs.processing_seconds = 3600
    first, gone, changed = _upload_in_order(domain, "ordered", ["w1.xml", "w2.xml", "w3.xml"])
    for blob in (first, gone, changed):
        domain.deliver(blob)
    old = domain.latest(changed)
    assert old.state is TrackingState.WAITING
    domain.inbound.get_blob_client(gone).delete_blob()
    time.sleep(1.05)  # a new Last-Modified: a new version
    domain.upload("ordered/USMF/w3.xml", VALID + b"\n")
    assert domain.deliver(changed).state is TrackingState.WAITING
    domain.d365.knobs.processing_seconds = 0
    domain.d365.clock.advance(7200)

    new = _tick_until(domain, [first, changed], _FINAL)[1]

    assert _received(domain) == ["w1.xml", "w3.xml"]
    assert new.row_key != old.row_key
    deleted, superseded = domain.latest(gone), domain.context.store.get(old.row_key)
    assert (deleted.state, deleted.reject_reason) == (TrackingState.REJECTED, "Deleted")
    assert superseded is not None
    assert (superseded.state, superseded.reject_reason) == (TrackingState.REJECTED, "Superseded")


def test_a_line_whose_head_record_is_lost_goes_on_and_says_so(
    domain: Domain, caplog: pytest.LogCaptureFixture, storage_connection_string: str
) -> None:
    blocker, second, third = _blocked_line(domain)
    lost = domain.latest(blocker)
    table = TableServiceClient.from_connection_string(storage_connection_string)
    table.get_table_client(domain.context.store.table_name).delete_entity("files", lost.row_key)

    with caplog.at_level(logging.WARNING, logger="shared.flows.line"):
        _tick_until(domain, [second, third], _FINAL)

    assert _received(domain) == ["j1.xml", "j2.xml", "j3.xml"]
    assert any(
        getattr(r, "event", None) == "line_head_lost" and blocker in r.getMessage()
        for r in caplog.records
    )

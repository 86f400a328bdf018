"""Resubmit: a final file copied back into the inbound path as a new version, once per request.

Real Azurite and the emulator; the crashes are storage failures injected at the exact step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.exceptions import AzureError

from shared.flows.resubmit import ResubmitError, Resubmitter
from shared.flows.source_blob import RECORD_KEY
from shared.tracking import (
    Actor,
    ActorKind,
    AuditEntry,
    AuditOutcome,
    TrackedFile,
    TrackingState,
)
from tests.e2e.test_enqueue import VALID
from tests.shared.conftest import Domain

PATH = "customers/USMF/resubmit.xml"
ADA = Actor(
    ActorKind.USER, "Ada Lovelace", object_id="5c2b1c4e-0f1d-4d8e-9a57-2f0f0e1d9c11", provider="aad"
)
SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def _resubmitter(domain: Domain) -> Resubmitter:
    context = domain.context
    return Resubmitter(
        context.store, domain.enqueuer, context.inbound, context.blob_service, context.audit
    )


def _refused_by_fo(domain: Domain) -> TrackedFile:
    """A file F&O refused (413): EnqueueFailed, still in the inbound container."""
    domain.d365.knobs.max_enqueue_bytes = 16
    blob = domain.upload(PATH, VALID)
    record = domain.deliver(blob)
    assert record is not None
    assert record.state is TrackingState.ENQUEUE_FAILED
    domain.d365.knobs.max_enqueue_bytes = None  # the cause is fixed
    return record


def test_a_refused_file_resubmitted_is_processed_and_both_records_link(domain: Domain) -> None:
    old = _refused_by_fo(domain)

    result = _resubmitter(domain).resubmit(old.row_key, request_id="req-1", actor=ADA)

    assert result.resubmitted is not None
    new = domain.tick_until_final(old.blob)
    assert new.row_key == result.resubmitted.row_key != old.row_key
    assert new.state is TrackingState.PROCESSED
    assert new.resubmit_of == old.row_key
    assert new.resubmit_request == "req-1"
    linked = domain.context.store.get(old.row_key)
    assert linked is not None
    assert linked.resubmitted_as == new.row_key
    assert linked.resubmitted_request == "req-1"
    assert linked.state is TrackingState.ENQUEUE_FAILED
    assert domain.enqueues() == 1
    # Who asked, and when, on both records and in the one audit row of the request.
    (entry,) = domain.context.audit.list_entries().records
    assert (entry.action, entry.actor, entry.request_id) == ("resubmit", ADA, "req-1")
    assert entry.outcome is AuditOutcome.DONE
    assert entry.targets == (old.row_key, new.row_key)
    assert (new.resubmit_by, new.resubmit_at) == (ADA, entry.at)
    assert (linked.resubmitted_by, linked.resubmitted_at) == (ADA, entry.at)


def test_the_same_request_twice_enqueues_once_and_answers_alike(domain: Domain) -> None:
    old = _refused_by_fo(domain)
    resubmitter = _resubmitter(domain)

    first = resubmitter.resubmit(old.row_key, request_id="double-click", actor=ADA)
    second = resubmitter.resubmit(old.row_key, request_id="double-click", actor=ADA)

    assert first.resubmitted is not None and second.resubmitted is not None
    assert first.resubmitted.row_key == second.resubmitted.row_key
    assert domain.enqueues() == 1


def test_another_request_on_a_resubmitted_file_is_refused_naming_the_new_record(
    domain: Domain,
) -> None:
    old = _refused_by_fo(domain)
    resubmitter = _resubmitter(domain)
    first = resubmitter.resubmit(old.row_key, request_id="a", actor=ADA)

    with pytest.raises(ResubmitError) as refused:
        resubmitter.resubmit(old.row_key, request_id="b", actor=ADA)

    assert refused.value.status == 409
    assert first.resubmitted is not None
    assert f"already resubmitted as record {first.resubmitted.row_key}" in str(refused.value)
    assert domain.enqueues() == 1


def test_a_crash_between_copy_and_claim_is_finished_by_the_retry(domain: Domain) -> None:
    old = _refused_by_fo(domain)
    resubmitter = _resubmitter(domain)
    # The new version's claim (the first transaction is the request's audit row).
    domain.faults.fail("reset", "POST", "$batch", skip=1, times=50)

    with pytest.raises(AzureError):
        resubmitter.resubmit(old.row_key, request_id="r", actor=ADA)
    domain.faults.clear()
    assert domain.enqueues() == 0
    result = resubmitter.resubmit(old.row_key, request_id="r", actor=ADA)

    assert result.resubmitted is not None
    assert result.original.resubmitted_as == result.resubmitted.row_key
    assert domain.tick_until_final(old.blob).state is TrackingState.PROCESSED
    assert domain.enqueues() == 1


def test_a_crash_before_the_link_is_finished_by_the_retry(domain: Domain) -> None:
    old = _refused_by_fo(domain)
    resubmitter = _resubmitter(domain)
    domain.faults.fail("reset", "PUT", old.row_key, times=50)  # the old record's link

    with pytest.raises(AzureError):
        resubmitter.resubmit(old.row_key, request_id="r", actor=ADA)
    domain.faults.clear()
    assert domain.enqueues() == 1
    result = resubmitter.resubmit(old.row_key, request_id="r", actor=ADA)

    assert result.resubmitted is not None
    assert result.original.resubmitted_as == result.resubmitted.row_key
    assert domain.enqueues() == 1


def test_a_retry_after_the_new_version_was_archived_finds_it_in_the_index(
    domain: Domain,
) -> None:
    old = _refused_by_fo(domain)
    resubmitter = _resubmitter(domain)
    domain.faults.fail("reset", "PUT", old.row_key, times=50)
    with pytest.raises(AzureError):
        resubmitter.resubmit(old.row_key, request_id="r", actor=ADA)
    domain.faults.clear()
    new = domain.tick_until_final(old.blob)
    assert new.archived_to is not None
    assert not domain.inbound.get_blob_client(old.blob).exists()

    result = resubmitter.resubmit(old.row_key, request_id="r", actor=ADA)

    assert result.original.resubmitted_as == new.row_key
    assert domain.enqueues() == 1


def test_an_archived_file_is_copied_back_from_the_archive(domain: Domain) -> None:
    blob = domain.upload(PATH, (SAMPLES / "customers/USMF/customers-with-errors.xml").read_bytes())
    domain.deliver(blob)
    old = domain.tick_until_final(blob)
    assert old.state is TrackingState.PROCESSED_WITH_ERRORS
    assert old.archived_to is not None
    assert not domain.inbound.get_blob_client(blob).exists()

    result = _resubmitter(domain).resubmit(old.row_key, request_id="fix-1", actor=ADA)

    assert result.resubmitted is not None
    assert result.resubmitted.resubmit_of == old.row_key
    new = domain.tick_until_final(blob)
    assert new.row_key == result.resubmitted.row_key
    assert new.state is TrackingState.PROCESSED_WITH_ERRORS
    assert domain.enqueues() == 2
    # The archived copy of the old version is still there, with its own stamp.
    archived = domain.context.blob_service.get_blob_client(*old.archived_to.split("/", 1))
    assert archived.get_blob_properties().metadata[RECORD_KEY] == old.row_key


def test_a_file_not_final_is_refused(domain: Domain) -> None:
    blob = domain.upload(PATH, VALID)
    record = domain.deliver(blob)
    assert record is not None and record.state is TrackingState.ENQUEUED

    with pytest.raises(ResubmitError) as refused:
        _resubmitter(domain).resubmit(record.row_key, request_id="r", actor=ADA)

    assert refused.value.status == 409
    assert "the file is Enqueued, not final" in str(refused.value)
    assert domain.enqueues() == 1


def test_an_outcome_unknown_file_needs_a_confirmation_that_names_the_risk(
    domain: Domain,
) -> None:
    blob = domain.upload(PATH, VALID)
    domain.d365.knobs.drop_after_body_burst = 1
    old = domain.deliver(blob)
    assert old is not None and old.last_error.startswith("outcome unknown")
    resubmitter = _resubmitter(domain)

    with pytest.raises(ResubmitError) as refused:
        resubmitter.resubmit(old.row_key, request_id="r", actor=ADA)
    assert refused.value.status == 409
    assert "F&O may already have this file" in str(refused.value)
    assert "import it twice" in str(refused.value)
    assert "confirm=true" in str(refused.value)

    result = resubmitter.resubmit(old.row_key, request_id="r", actor=ADA, confirm=True)
    assert result.resubmitted is not None
    assert domain.tick_until_final(blob).state is TrackingState.PROCESSED


def test_a_file_overwritten_since_is_refused(domain: Domain) -> None:
    old = _refused_by_fo(domain)
    domain.upload(PATH, VALID + b" ")

    with pytest.raises(ResubmitError) as refused:
        _resubmitter(domain).resubmit(old.row_key, request_id="r", actor=ADA)

    assert refused.value.status == 409
    assert "overwritten by a newer version" in str(refused.value)


@pytest.mark.parametrize(
    ("request_id", "text"),
    [("", "a request id is required"), ("a b", "is not accepted"), ("x" * 101, "not accepted")],
)
def test_a_bad_request_id_is_refused(domain: Domain, request_id: str, text: str) -> None:
    old = _refused_by_fo(domain)

    with pytest.raises(ResubmitError) as refused:
        _resubmitter(domain).resubmit(old.row_key, request_id=request_id, actor=ADA)

    assert refused.value.status == 400
    assert text in str(refused.value)


def test_an_unknown_record_is_404(domain: Domain) -> None:
    with pytest.raises(ResubmitError) as refused:
        _resubmitter(domain).resubmit("9" * 13 + "-" + "0" * 32, request_id="r", actor=ADA)
    assert refused.value.status == 404


def test_a_concurrent_request_whose_copy_lands_first_is_answered_alike(domain: Domain) -> None:
    old = _refused_by_fo(domain)
    other: list[object] = []
    # The other request (the same click, sent twice) copies and links just after this one
    # looked for a copy and found none, before it reads the inbound path to copy from it.
    domain.faults.meanwhile(
        "HEAD",
        PATH,
        lambda: other.append(
            _resubmitter(domain).resubmit(old.row_key, request_id="click", actor=ADA)
        ),
        skip=1,
    )

    result = _resubmitter(domain).resubmit(old.row_key, request_id="click", actor=ADA)

    assert len(other) == 1
    assert result.original.resubmitted_as == other[0].original.resubmitted_as  # type: ignore[attr-defined]
    assert domain.enqueues() == 1
    (entry,) = domain.context.audit.list_entries().records
    assert (entry.request_id, entry.outcome) == ("click", AuditOutcome.DONE)


# -- the audit trail ---------------------------------------------------------------------------

GRACE = Actor(ActorKind.USER, "Grace Hopper", object_id="0d6f2a9b-3c4e-4b5a-8d7c-1e2f3a4b5c6d")


def _trail(domain: Domain) -> list[AuditEntry]:
    return list(domain.context.audit.list_entries().records)


def test_a_crash_after_the_audit_row_before_the_copy_is_finished_by_the_retry(
    domain: Domain,
) -> None:
    old = _refused_by_fo(domain)
    domain.faults.fail("reset", "PUT", PATH, times=50)  # the copy into the inbound path

    with pytest.raises(AzureError):
        _resubmitter(domain).resubmit(old.row_key, request_id="r", actor=ADA)
    (begun,) = _trail(domain)
    assert (begun.outcome, begun.actor, begun.targets) == (
        AuditOutcome.REQUESTED,
        ADA,
        (old.row_key,),
    )
    assert domain.context.store.get(old.row_key).resubmitted_as is None  # type: ignore[union-attr]
    domain.faults.clear()

    # The retry comes from someone else's session with the same request id: who asked stays.
    result = _resubmitter(domain).resubmit(old.row_key, request_id="r", actor=GRACE)

    assert result.resubmitted is not None
    (entry,) = _trail(domain)
    assert entry.row_key == begun.row_key
    assert (entry.outcome, entry.actor, entry.at) == (AuditOutcome.DONE, ADA, begun.at)
    assert result.original.resubmitted_by == result.resubmitted.resubmit_by == ADA
    assert result.original.resubmitted_at == result.resubmitted.resubmit_at == begun.at
    assert domain.enqueues() == 1


def test_a_crash_after_the_link_leaves_the_row_requested_until_the_retry_marks_it_done(
    domain: Domain,
) -> None:
    old = _refused_by_fo(domain)
    # The audit outcome row: the one row of the status table created on its own.
    domain.faults.fail("reset", "POST", domain.context.settings.status_table, times=50)

    with pytest.raises(AzureError):
        _resubmitter(domain).resubmit(old.row_key, request_id="r", actor=ADA)
    domain.faults.clear()
    linked = domain.context.store.get(old.row_key)
    assert linked is not None and linked.resubmitted_as is not None
    new = domain.context.store.get(linked.resubmitted_as)
    assert new is not None
    (begun,) = _trail(domain)
    # The action took effect: its row is there, both records say who asked.
    assert begun.outcome is AuditOutcome.REQUESTED
    assert linked.resubmitted_by == new.resubmit_by == ADA

    _resubmitter(domain).resubmit(old.row_key, request_id="r", actor=GRACE)

    (entry,) = _trail(domain)
    assert (entry.outcome, entry.actor, entry.targets) == (
        AuditOutcome.DONE,
        ADA,
        (old.row_key, new.row_key),
    )
    assert domain.context.store.get(old.row_key).resubmitted_by == ADA  # type: ignore[union-attr]
    assert domain.enqueues() == 1


def test_a_refusal_after_the_row_is_its_outcome_one_before_writes_none(domain: Domain) -> None:
    old = _refused_by_fo(domain)
    domain.upload(PATH, VALID + b" ")  # overwritten: found only once the request has begun
    not_final = domain.deliver(domain.upload("customers/USMF/other.xml", VALID))
    assert not_final is not None

    with pytest.raises(ResubmitError):
        _resubmitter(domain).resubmit(old.row_key, request_id="r", actor=ADA)
    with pytest.raises(ResubmitError):
        _resubmitter(domain).resubmit(not_final.row_key, request_id="r", actor=ADA)

    (entry,) = _trail(domain)
    assert entry.targets == (old.row_key,)
    assert entry.outcome is AuditOutcome.REFUSED
    assert entry.detail is not None and "overwritten by a newer version" in entry.detail


def test_another_request_on_a_resubmitted_file_writes_no_row_and_changes_no_one(
    domain: Domain,
) -> None:
    old = _refused_by_fo(domain)
    _resubmitter(domain).resubmit(old.row_key, request_id="a", actor=ADA)

    with pytest.raises(ResubmitError):
        _resubmitter(domain).resubmit(old.row_key, request_id="b", actor=GRACE)

    (entry,) = _trail(domain)
    assert (entry.request_id, entry.actor) == ("a", ADA)
    assert domain.context.store.get(old.row_key).resubmitted_by == ADA  # type: ignore[union-attr]


def test_a_request_begun_then_overtaken_by_another_is_refused_on_its_retry(
    domain: Domain,
) -> None:
    old = _refused_by_fo(domain)
    domain.faults.fail("reset", "PUT", PATH, times=50)  # Ada's copy: her row, nothing else
    with pytest.raises(AzureError):
        _resubmitter(domain).resubmit(old.row_key, request_id="a", actor=ADA)
    domain.faults.clear()
    _resubmitter(domain).resubmit(old.row_key, request_id="b", actor=GRACE)

    with pytest.raises(ResubmitError, match="already resubmitted") as refused:
        _resubmitter(domain).resubmit(old.row_key, request_id="a", actor=ADA)

    assert refused.value.status == 409
    rows = {entry.request_id: entry for entry in _trail(domain)}
    assert (rows["b"].actor, rows["b"].outcome) == (GRACE, AuditOutcome.DONE)
    # Ada's row no longer says her request is under way: it was refused, and why.
    assert (rows["a"].actor, rows["a"].outcome) == (ADA, AuditOutcome.REFUSED)
    assert rows["a"].detail == str(refused.value)
    assert domain.enqueues() == 1


def test_a_resubmitted_version_resubmitted_again_keeps_where_it_came_from(domain: Domain) -> None:
    old = _refused_by_fo(domain)
    first = _resubmitter(domain).resubmit(old.row_key, request_id="first", actor=ADA)
    assert first.resubmitted is not None
    middle = domain.tick_until_final(old.blob)
    assert middle.row_key == first.resubmitted.row_key

    second = _resubmitter(domain).resubmit(
        middle.row_key, request_id="second", actor=GRACE, confirm=True
    )

    linked = second.original
    # Where it came from (ADA's request) and what it became (GRACE's), side by side.
    assert (linked.resubmit_of, linked.resubmit_request, linked.resubmit_by) == (
        old.row_key,
        "first",
        ADA,
    )
    assert second.resubmitted is not None
    assert (linked.resubmitted_as, linked.resubmitted_request, linked.resubmitted_by) == (
        second.resubmitted.row_key,
        "second",
        GRACE,
    )
    assert [(e.request_id, e.actor) for e in _trail(domain)] == [("second", GRACE), ("first", ADA)]

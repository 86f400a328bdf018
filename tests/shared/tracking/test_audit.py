"""The audit trail: one row per request of an operator action, never rewritten, found again
after a lost answer, listed newest first by time and person, deleted by age within a deadline.

Real Azurite; the lost answers and resets are injected into the store's own clients.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.tracking import (
    AUDIT_PARTITION,
    Actor,
    ActorKind,
    AuditEntry,
    AuditOutcome,
    AuditStore,
)
from tests.faults import StorageFaults

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
ADA = Actor(ActorKind.USER, "Ada Lovelace", object_id="5c2b1c4e-0f1d-4d8e-9a57-2f0f0e1d9c11")
GRACE = Actor(ActorKind.USER, "Grace Hopper", object_id="0d6f2a9b-3c4e-4b5a-8d7c-1e2f3a4b5c6d")
KEY = Actor.function_key()
OLD = "8208290399999-" + "a" * 32
NEW = "8208290399998-" + "b" * 32


@dataclass
class Clock:
    """Now, set by the test."""

    now: datetime = T0
    ticks: list[datetime] = field(default_factory=list)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Trail:
    """An audit store on a fresh table, its raw rows, its faults and its clock."""

    store: AuditStore
    table: TableClient
    faults: StorageFaults
    clock: Clock

    def rows(self) -> list[dict]:
        """Every row of the audit partition, in key order."""
        return list(self.table.query_entities("PartitionKey eq 'audit'"))


_OPERATION = re.compile(rb"^([A-Z]+) \S+ HTTP/1\.1\r?$", re.MULTILINE)


@dataclass
class Writes:
    """The method of every write the store sent: a transaction's operations one by one."""

    methods: list[str] = field(default_factory=list)

    def __call__(self, pipeline_request: Any) -> None:
        request = pipeline_request.http_request
        if request.url.endswith("$batch"):
            self.methods += [m.decode() for m in _OPERATION.findall(request.content)]
        elif request.method != "GET":
            self.methods.append(request.method)


@pytest.fixture
def writes() -> Writes:
    return Writes()


@pytest.fixture
def trail(storage_connection_string: str, unique_name: str, writes: Writes) -> Trail:
    faults = StorageFaults()
    hooks = faults.options()
    before = hooks["raw_request_hook"]

    def spied(pipeline_request: Any) -> None:
        before(pipeline_request)  # a reset raises here: the write never went out
        writes(pipeline_request)

    service = TableServiceClient.from_connection_string(
        storage_connection_string,
        retry_backoff_factor=0.01,
        **{**hooks, "raw_request_hook": spied},
    )
    clock = Clock()
    store = AuditStore(service.get_table_client(unique_name), clock=clock)
    store.ensure_ready()
    raw = TableServiceClient.from_connection_string(storage_connection_string)
    return Trail(store, raw.get_table_client(unique_name), faults, clock)


def _resubmit(trail: Trail, request_id: str = "req-1", actor: Actor = ADA, target: str = OLD):
    return trail.store.record("resubmit", actor=actor, request_id=request_id, targets=(target,))


def test_an_action_is_one_row_with_who_when_what_and_its_request(trail: Trail) -> None:
    entry = _resubmit(trail)

    assert trail.store.get(entry.row_key) == entry
    (row, index) = trail.rows()
    assert row["RowKey"] == entry.row_key
    assert index["RowKey"].startswith("~r-") and index["audit_key"] == entry.row_key
    assert row["action"] == "resubmit"
    assert (row["actor_kind"], row["actor_name"], row["actor_object_id"]) == (
        "user",
        "Ada Lovelace",
        ADA.object_id,
    )
    assert row["at"] == T0
    assert row["request_id"] == "req-1"
    assert row["targets"] == f'["{OLD}"]'
    assert row["outcome"] == "requested"


def test_the_same_request_again_finds_its_row_and_keeps_who_and_when(trail: Trail) -> None:
    first = _resubmit(trail)
    trail.clock.now = T0 + timedelta(minutes=5)

    again = _resubmit(trail, actor=GRACE)

    assert again == first
    assert again.actor == ADA and again.at == T0
    assert len(trail.rows()) == 2  # the action's row and its index, once


def test_another_request_or_target_is_another_row_newest_first(trail: Trail) -> None:
    first = _resubmit(trail)
    trail.clock.now = T0 + timedelta(seconds=1)
    second = _resubmit(trail, request_id="req-2")
    third = _resubmit(trail, target=NEW)  # the same request id on another record

    assert len({first.row_key, second.row_key, third.row_key}) == 3
    listed = trail.store.list_entries().records
    assert [e.row_key for e in listed][-1] == first.row_key
    assert {e.row_key for e in listed[:2]} == {second.row_key, third.row_key}


def test_a_create_whose_answer_was_lost_is_recognised_not_written_twice(trail: Trail) -> None:
    trail.faults.fail("lost", "POST", "$batch")

    entry = _resubmit(trail)

    assert trail.faults.injected["lost"] == 1
    assert len(trail.rows()) == 2
    assert trail.store.get(entry.row_key) == entry


def test_two_attempts_of_one_request_at_once_make_one_row_the_first_to_land(
    trail: Trail,
) -> None:
    other: list[AuditEntry] = []
    # The same request from another worker lands just before this one's transaction goes out.
    trail.faults.meanwhile("POST", "$batch", lambda: other.append(_resubmit(trail, actor=GRACE)))

    entry = _resubmit(trail, actor=ADA)

    assert entry == other[0]
    assert entry.actor == GRACE  # the first to land is who the trail keeps
    assert len(trail.rows()) == 2


def test_a_create_that_never_reached_storage_is_sent_again(trail: Trail) -> None:
    trail.faults.fail("reset", "POST", "$batch", times=2)

    entry = _resubmit(trail)

    assert trail.store.get(entry.row_key) == entry
    assert len(trail.rows()) == 2


def test_the_outcome_moves_forward_only_and_the_facts_never_change(trail: Trail) -> None:
    entry = _resubmit(trail)
    trail.clock.now = T0 + timedelta(seconds=3)

    refused = trail.store.complete(entry, AuditOutcome.REFUSED, detail="overwritten")
    done = trail.store.complete(refused, AuditOutcome.DONE, made=(NEW,))
    after = trail.store.complete(done, AuditOutcome.REFUSED, detail="too late")
    stale = trail.store.complete(entry, AuditOutcome.REFUSED, detail="an older read")

    stored = trail.store.get(entry.row_key)
    assert stored is not None
    assert stored.outcome is AuditOutcome.DONE
    assert stored.targets == (OLD, NEW)
    assert stored.completed_at == T0 + timedelta(seconds=3)
    assert (stored.actor, stored.at, stored.request_id) == (ADA, T0, "req-1")
    assert after == done
    assert stale.outcome is AuditOutcome.DONE  # re-read, already further: left as it is


@pytest.mark.parametrize("kind", ["lost", "reset"])
def test_an_outcome_whose_answer_was_lost_is_recognised(trail: Trail, kind: str) -> None:
    entry = _resubmit(trail)
    trail.faults.fail(kind, "POST", trail.table.table_name)  # type: ignore[arg-type]

    done = trail.store.complete(entry, AuditOutcome.DONE, made=(NEW,))

    assert trail.faults.injected[kind] == 1
    assert done.outcome is AuditOutcome.DONE
    stored = trail.store.get(entry.row_key)
    assert stored == done
    assert [row["RowKey"] for row in trail.rows()][:2] == [entry.row_key, entry.row_key + "-done"]


def test_an_action_without_a_target_is_refused(trail: Trail) -> None:
    with pytest.raises(ValueError, match="at least one target"):
        trail.store.record("resubmit", actor=ADA, request_id="r", targets=())


def test_the_listing_is_filtered_by_time_person_and_action_and_paged(trail: Trail) -> None:
    for minute, actor in enumerate([ADA, GRACE, KEY, ADA, GRACE]):
        trail.clock.now = T0 + timedelta(minutes=minute)
        _resubmit(trail, request_id=f"r{minute}", actor=actor)
    trail.clock.now = T0 + timedelta(minutes=9)
    trail.store.record("release", actor=ADA, request_id="line-1", targets=("line customers",))

    def listed(**filters: object) -> list[str]:
        return [e.request_id for e in trail.store.list_entries(**filters).records]  # type: ignore[arg-type]

    assert listed() == ["line-1", "r4", "r3", "r2", "r1", "r0"]
    assert listed(person="ada lovelace") == ["line-1", "r3", "r0"]
    assert listed(person=GRACE.object_id.upper()) == ["r4", "r1"]
    assert listed(person="function key") == ["r2"]
    assert listed(person="nobody") == []
    assert listed(action="resubmit", person="Ada Lovelace") == ["r3", "r0"]
    assert listed(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)) == [
        "r3",
        "r2",
        "r1",
    ]
    first = trail.store.list_entries(limit=4)
    assert first.continuation is not None
    rest = trail.store.list_entries(limit=4, continuation=first.continuation)
    assert [e.request_id for e in rest.records] == ["r1", "r0"]
    assert rest.continuation is None


def test_a_token_the_trail_did_not_issue_is_refused(trail: Trail) -> None:
    with pytest.raises(ValueError, match="not a token this API issued"):
        trail.store.list_entries(continuation="fn4tYWxpY2UtaW5kZXg")  # "~r-alice-index"


def test_entries_older_than_the_cutoff_are_deleted_with_their_index_rows(trail: Trail) -> None:
    for i in range(120):
        trail.clock.now = T0 + timedelta(seconds=i)
        _resubmit(trail, request_id=f"old-{i}")
    trail.clock.now = T0 + timedelta(days=1)
    kept = _resubmit(trail, request_id="new")
    before = trail.faults.count("POST", "$batch")

    deleted = trail.store.delete_older_than(T0 + timedelta(hours=1), deadline=time.monotonic() + 60)

    assert deleted == 120
    assert [row["RowKey"] for row in trail.rows()] == [kept.row_key, trail.rows()[1]["RowKey"]]
    assert trail.rows()[1]["audit_key"] == kept.row_key
    assert trail.faults.count("POST", "$batch") - before == 3  # 50 + 50 + 20 entries
    # Its index gone too: the same request recorded again is a new row.
    trail.clock.now = T0 + timedelta(days=2)
    assert _resubmit(trail, request_id="old-0").at == T0 + timedelta(days=2)


def test_an_entry_at_the_cutoff_is_kept(trail: Trail) -> None:
    at_cutoff = _resubmit(trail)
    trail.clock.now = T0 - timedelta(milliseconds=1)
    _resubmit(trail, request_id="before")

    assert trail.store.delete_older_than(T0, deadline=time.monotonic() + 60) == 1
    assert [e.row_key for e in trail.store.list_entries().records] == [at_cutoff.row_key]


def test_a_deletion_stops_at_its_deadline(trail: Trail) -> None:
    for i in range(3):
        trail.clock.now = T0 + timedelta(seconds=i)
        _resubmit(trail, request_id=f"old-{i}")

    assert trail.store.delete_older_than(T0 + timedelta(days=1), deadline=time.monotonic()) == 0
    assert len(trail.rows()) == 6


def test_a_deletion_past_its_deadline_ends_after_the_transaction_in_flight(trail: Trail) -> None:
    for i in range(60):
        trail.clock.now = T0 + timedelta(seconds=i)
        _resubmit(trail, request_id=f"old-{i}")
    deadline = time.monotonic() + 0.5
    # The first transaction takes the budget: the next one is never started.
    trail.faults.meanwhile(
        "POST", "$batch", lambda: time.sleep(max(deadline - time.monotonic(), 0))
    )

    deleted = trail.store.delete_older_than(T0 + timedelta(days=1), deadline=deadline)

    assert deleted == 50
    assert len(trail.store.list_entries(limit=100).records) == 10
    assert (
        trail.store.delete_older_than(T0 + timedelta(days=1), deadline=time.monotonic() + 60) == 10
    )


def test_a_row_another_run_deleted_first_does_not_stop_the_batch(trail: Trail) -> None:
    entries = []
    for i in range(3):
        trail.clock.now = T0 + timedelta(seconds=i)
        entries.append(_resubmit(trail, request_id=f"old-{i}"))
    # Another retention run deletes one entry just before this one's transaction goes out.
    trail.faults.meanwhile(
        "POST",
        "$batch",
        lambda: trail.table.delete_entity(AUDIT_PARTITION, entries[1].row_key),
    )

    deleted = trail.store.delete_older_than(T0 + timedelta(days=1), deadline=time.monotonic() + 60)

    assert deleted == 3
    assert trail.rows() == []


def test_each_audit_write_is_one_log_line_with_its_ids(
    trail: Trail, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="shared.tracking._audit")

    entry = _resubmit(trail)
    trail.store.complete(entry, AuditOutcome.DONE, made=(NEW,))

    lines = [r.getMessage() for r in caplog.records if r.name == "shared.tracking._audit"]
    assert lines == [
        f"audit recorded action=resubmit outcome=requested request=req-1 actor=Ada Lovelace "
        f"actor_id={ADA.object_id} targets={OLD} row={entry.row_key}",
        f"audit completed action=resubmit outcome=done request=req-1 actor=Ada Lovelace "
        f"actor_id={ADA.object_id} targets={OLD},{NEW} row={entry.row_key}",
    ]


def test_no_write_ever_replaces_or_merges_an_audit_row(trail: Trail, writes: Writes) -> None:
    seen: dict[str, str] = {}

    def unchanged() -> None:
        """Every row keeps the ETag it was created with (a rewrite would give it a new one)."""
        for row in trail.rows():
            etag = row.metadata["etag"]
            assert seen.setdefault(row["RowKey"], etag) == etag, f"{row['RowKey']} rewritten"

    trail.faults.fail("lost", "POST", "$batch")
    entry = _resubmit(trail)
    unchanged()
    trail.clock.now = T0 + timedelta(seconds=3)
    trail.faults.fail("lost", "POST", trail.table.table_name)
    refused = trail.store.complete(entry, AuditOutcome.REFUSED, detail="overwritten")
    unchanged()
    trail.faults.fail("reset", "POST", trail.table.table_name)
    trail.store.complete(refused, AuditOutcome.DONE, made=(NEW,))
    unchanged()
    # Later attempts of the same request, from what they read before: nothing is written again.
    trail.store.complete(entry, AuditOutcome.REFUSED, detail="an older read")
    trail.store.complete(entry, AuditOutcome.DONE, made=(NEW,))
    again = _resubmit(trail, actor=GRACE)
    unchanged()

    assert again.outcome is AuditOutcome.DONE and again.targets == (OLD, NEW)
    assert sorted(seen) == sorted(
        [
            entry.row_key,
            f"{entry.row_key}-refused",
            f"{entry.row_key}-done",
            trail.rows()[-1]["RowKey"],
        ]
    )
    assert trail.faults.injected == {"lost": 2, "reset": 1}
    # Creates only: the table, the action's row with its index (once: its lost answer is read
    # back), each outcome once (a reset never goes out), each once more by the later attempts
    # (refused by the service as existing).
    assert writes.methods == ["POST"] * 7


def test_an_entry_row_that_holds_its_outcome_reads_as_before(trail: Trail) -> None:
    entry = _resubmit(trail)
    row = dict(trail.rows()[0])
    # As the former store's complete() left it: the outcome on the action's row itself.
    row.update(
        outcome="done", completed_at=T0 + timedelta(seconds=3), targets=json.dumps([OLD, NEW])
    )
    trail.table.update_entity(row, mode=UpdateMode.REPLACE)

    stored = trail.store.get(entry.row_key)

    assert stored is not None
    assert (stored.outcome, stored.targets) == (AuditOutcome.DONE, (OLD, NEW))
    assert stored.completed_at == T0 + timedelta(seconds=3)
    assert trail.store.find("resubmit", targets=(OLD,), request_id="req-1") == stored
    assert trail.store.list_entries().records == (stored,)
    assert trail.store.complete(stored, AuditOutcome.DONE, made=(NEW,)) == stored
    assert len(trail.rows()) == 2  # nothing written: it is done already


def test_a_page_counts_entries_never_splitting_one_from_its_outcomes(trail: Trail) -> None:
    for minute in range(5):
        trail.clock.now = T0 + timedelta(minutes=minute)
        entry = _resubmit(trail, request_id=f"r{minute}", actor=(ADA, GRACE)[minute % 2])
        refused = trail.store.complete(entry, AuditOutcome.REFUSED, detail="first")
        trail.store.complete(refused, AuditOutcome.DONE, made=(f"made-{minute}",))
    assert len(trail.rows()) == 20

    pages = []
    continuation = None
    while True:
        page = trail.store.list_entries(limit=2, continuation=continuation)
        pages.append([(e.request_id, e.outcome, e.targets[-1], e.detail) for e in page.records])
        if (continuation := page.continuation) is None:
            break

    done = AuditOutcome.DONE
    assert pages == [
        [("r4", done, "made-4", None), ("r3", done, "made-3", None)],
        [("r2", done, "made-2", None), ("r1", done, "made-1", None)],
        [("r0", done, "made-0", None)],
    ]
    ada = trail.store.list_entries(person="ada lovelace", limit=1)
    assert [(e.request_id, e.outcome) for e in ada.records] == [("r4", done)]
    rest = trail.store.list_entries(person="ada lovelace", continuation=ada.continuation)
    assert [(e.request_id, e.outcome) for e in rest.records] == [("r2", done), ("r0", done)]


def test_outcome_rows_are_deleted_with_their_entry_in_one_transaction(trail: Trail) -> None:
    for i in range(30):
        trail.clock.now = T0 + timedelta(seconds=i)
        entry = _resubmit(trail, request_id=f"old-{i}")
        refused = trail.store.complete(entry, AuditOutcome.REFUSED, detail="first")
        trail.store.complete(refused, AuditOutcome.DONE, made=(NEW,))
    # Outcome rows created just after another run deleted their entry (with its index):
    # skipped by reads, deleted by age.
    for key in (entry.row_key, "~r-" + entry.row_key.split("-")[1]):
        trail.table.delete_entity(AUDIT_PARTITION, key)
    trail.clock.now = T0 + timedelta(days=1)
    kept = trail.store.complete(_resubmit(trail, request_id="new"), AuditOutcome.DONE)
    assert [e.request_id for e in trail.store.list_entries(limit=2).records] == ["new", "old-28"]
    before = trail.faults.count("POST", "$batch")

    deleted = trail.store.delete_older_than(T0 + timedelta(hours=1), deadline=time.monotonic() + 60)

    assert deleted == 29
    # 4 rows an entry (its row, two outcomes, its index): 25 entries, then the rest.
    assert trail.faults.count("POST", "$batch") - before == 2
    assert sorted(row["RowKey"] for row in trail.rows()) == sorted(
        [kept.row_key, f"{kept.row_key}-done", "~r-" + kept.row_key.split("-")[1]]
    )
    assert trail.store.list_entries().records == (kept,)

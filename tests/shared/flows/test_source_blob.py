"""The source blob: fingerprinted across metadata writes, stamped within Azure's metadata
limit; an uploader's metadata posing as a resubmit's (Hypothesis) is read or left out."""

import json
from datetime import datetime
from urllib.parse import quote

from azure.storage.blob import BlobProperties, BlobServiceClient
from hypothesis import example, given
from hypothesis import strategies as st

from shared.flows.source_blob import (
    METADATA_LIMIT,
    REQUEST_ID_LIMIT,
    RESUBMIT_AT_KEY,
    RESUBMIT_BY_KEY,
    RESUBMIT_OF_KEY,
    RESUBMIT_REQUEST_KEY,
    fingerprint,
    resubmit_fields,
    with_stamp,
)
from shared.tracking import Actor, ActorKind, TrackedFile, TrackingState, utcnow
from tests.hostile import DEEP_JSON, HOSTILE, JSON_VALUES, TEXTS, weighted


def test_fingerprint_survives_a_metadata_write_but_not_an_overwrite(
    storage_connection_string: str, unique_name: str
) -> None:
    container = BlobServiceClient.from_connection_string(
        storage_connection_string
    ).create_container(unique_name)
    blob = container.upload_blob("f.xml", b"<Document/>")
    before = fingerprint(blob.get_blob_properties())
    blob.set_blob_metadata({"d365_state": "Enqueued"})
    assert fingerprint(blob.get_blob_properties()) == before
    blob.upload_blob(b"<Document><X/></Document>", overwrite=True)
    assert fingerprint(blob.get_blob_properties()) != before


def test_the_stamp_fits_beside_an_uploaders_large_metadata() -> None:
    """Finding 3: metadata over 8 KiB once our stamp is added is refused on every try."""
    now = utcnow()
    record = TrackedFile(
        record_id="r" * 32,
        row_key="1" * 13 + "-" + "a" * 32,
        blob="a.xml",
        blob_etag="e",
        state=TrackingState.PROCESSED,
        received_at=now,
        updated_at=now,
        fingerprint="10:ab:2026",
        last_error="x" * 900,
    )
    theirs = {"note": "y" * (METADATA_LIMIT - 200)}
    stamped = with_stamp(theirs, record)
    assert stamped["note"] == theirs["note"]
    assert stamped["d365_state"] == "Processed"
    assert sum(len(k) + len(v) for k, v in stamped.items()) <= METADATA_LIMIT
    assert len(with_stamp({}, record)["d365_reason"]) == 900


_ACTOR_JSON = st.builds(
    lambda actor: quote(json.dumps(actor), safe=""),
    st.fixed_dictionaries(
        {"kind": weighted((2, st.sampled_from([k.value for k in ActorKind])), (1, JSON_VALUES))},
        optional={"name": JSON_VALUES, "object_id": JSON_VALUES, "provider": JSON_VALUES},
    )
    | JSON_VALUES,
)
METADATA = st.fixed_dictionaries(
    {RESUBMIT_OF_KEY: st.just("1" * 13 + "-" + "a" * 32)},
    optional={
        RESUBMIT_BY_KEY: weighted(
            (3, _ACTOR_JSON), (1, DEEP_JSON.map(lambda text: quote(text, safe=""))), (1, TEXTS)
        ),
        RESUBMIT_AT_KEY: weighted((1, st.datetimes().map(datetime.isoformat)), (1, TEXTS)),
        RESUBMIT_REQUEST_KEY: TEXTS,
    },
)
"""An uploader's metadata posing as a resubmitted copy's: who asked, when, which request."""


@HOSTILE
@given(metadata=METADATA)
@example(metadata={RESUBMIT_OF_KEY: "1" * 13 + "-" + "a" * 32, RESUBMIT_BY_KEY: "%5B" * 5000})
@example(
    metadata={
        RESUBMIT_OF_KEY: "1" * 13 + "-" + "a" * 32,
        RESUBMIT_BY_KEY: quote('{"kind": "user", "name": null, "object_id": 7}', safe=""),
    }
)
def test_an_uploaders_resubmit_metadata_is_read_or_left_out_never_raised(
    metadata: dict[str, str],
) -> None:
    fields = resubmit_fields(BlobProperties(name="a.xml", metadata=metadata))

    actor = fields.get("resubmit_by")
    if actor is not None:
        assert isinstance(actor, Actor)
        assert all(isinstance(value, str) for value in actor.to_dict().values()), actor
    assert len(fields.get("resubmit_request", "")) <= REQUEST_ID_LIMIT

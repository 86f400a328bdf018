"""The DMF package path of a file: its package built, uploaded, imported, then followed.

The rooms: :mod:`.manifest` (templates and packages read), :mod:`.build` (the zip of a plain
file), :mod:`.importer` (upload, the import lease, ImportFromPackage), :mod:`.send` (the
enqueuer's steps 2-6 with their record writes), :mod:`.follow` (step 7, for the poller).

The enqueuer drives a package route's file (``"api": "package"``, or ``on_too_large``) with
these steps; the record writes are the enqueuer's and the poller's, and each is named here
with what happens when it is the last line that runs:

1. Claim (the enqueuer's usual transaction): record ``Received`` + schedule entry due when
   the claim's lease ends. *Stop here*: the poller resumes the claim, and the steps below run
   again; nothing reached F&O.
2. :meth:`.importer.PackageImporter.check_lease`: a package-import lease held elsewhere sends
   the file back to the schedule (``Received``, retried later) *before* anything is uploaded, so a
   busy environment does not cost a full upload per try. Nothing waits for the lease in a
   worker thread: the schedule is the wait.
3. :meth:`.importer.PackageImporter.upload`: GetAzureWriteUrl, then the package (the blob as
   it is, or a zip built on the fly from the template) streamed to the BlobUrl in 4 MiB blocks
   and committed by Put Block List (see :mod:`shared.clients.d365._blocks`: every storage
   version takes such blocks, whatever F&O's SAS version). The BlobUrl must be a SAS URL of
   F&O's storage (:mod:`shared.clients.d365._urls`). The upload has the enqueue send's
   deadline (:class:`shared.flows.deadline.DeadlineStream`): the package stops being read
   once the upload would outlive the claim's lease less the wait for its answer, so recovery
   never resumes a claim whose upload still runs (two uploads in parallel, a late
   ``Importing`` write). The lease is not extended instead: CLAIM_LEASE is already the bound an
   operator sets for "how long may one send take", and a cut upload says to raise it. The deadline
   guards the reading of the package only: the blocks still in flight when it passes, and the Put
   Block List, are retried (each is idempotent) under the client's RetryPolicy after it, each call
   within the client's timeouts; that is what the answer time the deadline leaves in the lease is
   for. *Stop here*: as 1; blocks no list committed are invisible, the upload is repeated to
   a new URL, F&O has imported nothing.
   A failure: the blob changed or went -> ``Rejected``; one that waiting will not cure (the
   template is missing or broken, a manifest that is not XML the app reads, a package over
   what a block blob holds, the package or the template refused by
   :mod:`shared.zips`, a BlobUrl the client refuses, a block refused with 400 / 403 /
   413, F&O refused GetAzureWriteUrl with a 4xx other than 401 / 403 / 404 / 408 / 429) ->
   ``EnqueueFailed`` at once, naming the cause and the fix (F&O never saw an import);
   anything else (5xx, 408, 429, no connection, no token, the deadline, the template replaced
   while it was read, and any error nobody foresaw, recorded by its type) -> retried later
   from the schedule, until ``MAX_PENDING_AGE``. Both zips are read by ranges of the blob,
   within the ``ZIP_*`` limits: ``Manifest.xml`` and ``PackageHeader.xml`` only, never the
   data files.
4. :meth:`.importer.PackageImporter.acquire_lease`: the package-import lease row, one try. Taken
   meanwhile: as 2. *Stop here*: the lease ends at its ``until``; the file is resumed as in 1.
5. The record becomes ``Importing`` with our execution id (``<route>-<record id>``, the same
   for every attempt of this file) *before* the call, with its next poll. *Stop here*: the
   poller follows that execution id; F&O never heard of it, so it reads ``Unknown`` / "not
   found" until ``MAX_PENDING_AGE``, and the file ends ``TimedOut`` with a message saying
   the import may not have started. At most once, always a final state. The write is
   conditional on the claim as read: a recovery that took the file over meanwhile wins, and
   this worker stops (lease released) before calling F&O.
6. :meth:`.importer.PackageImporter.import_package`: ImportFromPackage, one attempt.
   - answered: the lease is released; the poller follows the execution, under the id F&O
     answered (when it is not ours, the record's ``execution_id`` becomes F&O's and ours is
     kept in ``sent_execution_id``);
   - no answer after the body left (a client timeout: F&O goes on), a 5xx, a 2xx we cannot
     read: the record stays ``Importing`` and is followed by its execution id, never re-sent;
     without an answer the lease is kept until its ``until`` (F&O may still be in that call);
   - refused in a way that proves F&O did not take it (401, 403, 404, 408, 429, 503 as for
     the enqueue and GetAzureWriteUrl; no connection; the parallel-call refusal): back to
     ``Received``, retried later, until ``MAX_PENDING_AGE`` (``EnqueueFailed``). Before
     calling again, the retry asks GetExecutionSummaryStatus about the same execution id:
     when F&O knows it (a gateway's 503 can hide a call F&O took), the file is followed,
     never sent twice.
     *Stop before that write*: as 5, ``TimedOut`` at the age limit (never imported twice);
   - "already exists": F&O has that execution id: followed as above;
   - any other refusal (400: the manifest, an entity, the company): ``ImportFailed`` with
     F&O's text, written even over a poll that re-anchored the record during the call.
7. The poller (:meth:`.follow.ImportFollower.follow`) reads GetExecutionSummaryStatus until it is
   final: Succeeded -> ``Processed``, PartiallySucceeded -> ``ProcessedWithErrors``,
   Failed -> ``ImportFailed``, Canceled -> ``ImportCanceled``; ``Unknown`` and everything else
   keep polling until ``MAX_PENDING_AGE`` (``TimedOut``). F&O's text is kept in
   ``d365_status``. The row errors (GetExecutionErrors) and, on PartiallySucceeded / Failed,
   per manifest entity, the staging error file and the target error keys file are copied into
   the errors container and linked from the record, best effort: what cannot be had (a call
   that keeps failing, a URL refused or answering 404, a file still generating, a temporary
   file that cannot be written, the entities left when the follow's time for error files,
   ``PackagePolicy.error_files_time``, ran out) is noted in ``last_error``, and F&O's outcome
   is written all the same, within the poll's lease. *Stop before the final write*:
   the next tick does it all again (the copies are overwritten, nothing is lost).
"""

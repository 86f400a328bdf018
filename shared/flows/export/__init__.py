"""The flow of an exported message: dequeue, stream into blob storage, commit, then ack.

Per tick, for each enabled export route (``EXPORT_ROUTES``), the exporter takes the route's
lease (one tick at a time per route, across instances), then dequeues until F&O answers 204,
``max_messages`` is reached or the time budget is spent. For each message:

1. **Record Dequeued** (insert, or the next dequeue of a re-delivered message, found by its
   message id). The target name is fixed at the first dequeue (``{date}`` stays that day's).
   *Fails*: nothing is downloaded or acked; F&O offers the message again in 30 minutes.
   A dequeue answer saying F&O has no file (``IsDownLoadFileExist`` false, e.g. a job that
   prevents uploads of zero records) has nothing to write: it is recorded Downloaded with no
   blob and F&O's ``FileDownLoadErrorMessage``, then acked (left unacked, it would come back
   every 30 minutes for ever).
2. **Already written?** When the record says the blobs are committed, or the target blob
   exists with this message id in its metadata (a crash between the commit and step 4),
   nothing is written again: go to the ack.
3. **Stream the download into the target blob**: each chunk of F&O's answer fills a block;
   full blocks are staged (``stage_block``) a few at a time in the background, so memory
   stays at ``block_size * (blocks_in_flight + 1)`` whatever the file's size. Only
   ``commit_block_list`` (with metadata: message id, activity id, correlation id, dequeue
   time, route) makes the blob exist, and only if it does not exist yet: a commit whose
   answer was lost is not committed again (the retry finds the blob with this message id:
   done); a blob with other metadata is left alone and the write fails, naming it. Staged
   blocks are invisible and discarded by the next commit or after a week. With ``unzip``,
   the package is first streamed into a local temporary file (a zip's directory is at its
   end, so reading its members needs random access; the file is unlinked on creation and so
   removed however the process ends), then opened by :mod:`shared.zips`: what its
   directory declares is checked against the ``ZIP_*`` limits before any member is written,
   then each member is streamed from it into its own blob the same way, every inflated byte
   counted.
   *Fails* part way (connection lost, F&O error, storage error): no blob under the final
   name (an unzip may have committed some members whole: they are downloaded again and
   kept, as their commit finds them with this message id); the record says ExportFailed and
   why; the message is not acked, so F&O offers it again in 30 minutes and the download is
   retried. A failure of the message's own (F&O's download, the package, a target name
   taken, an untrusted DownloadLocation) counts toward ``EXPORT_MAX_ATTEMPTS``
   (``failed_attempts``, "attempt 2 of 10"); one of our own storage (``AzureError``) does
   not: an outage or a lost permission must not give up, and ack, every message it meets.
   *Given up*: the failure that makes ``EXPORT_MAX_ATTEMPTS`` counted, or the package is
   refused by the zip limits or is not a readable zip (the same bytes come back at every
   offer: retrying cannot help). The refused package is first written unopened as
   ``<folder><message id>.zip``; then the record says ExportFailed for good (``gave_up_at``,
   the reason, what was kept: that blob, and the members committed before the failure),
   then the ``export_failed`` event carries ``gave_up``, and the message is acked (step 5)
   so that F&O stops offering it. *Stop before the record write, or storage refuses it*:
   recorded as a failure when storage lets us, not acked, the route's next message goes on;
   F&O offers it again, and it is tried and given up again; *after it*: the next offer only
   acks (no download, nothing written).
4. **Record Downloaded** with the blob names (a list too long for the row goes to a blob of
   the errors container first, and the row keeps its count and that blob's name). *Fails*:
   recorded ExportFailed when storage lets us, not acked; the message comes back and step 2
   finds the blob by its metadata (for an unzip, the members are downloaded again and kept).
   This is our own storage: retried at every offer without a cap (giving up would ack a
   message whose blobs no record names), each failure an ``export_failed`` event with
   ``cause`` ``storage``, so the alert fires while it lasts.
5. **Ack** with the dequeue body exactly as received. *Fails* (or its answer is lost): the
   record says ExportFailed with the ack's error (a message given up keeps its reason as the
   error, the ack's in its history); the message comes back after 30 minutes
   and step 2 acks it without writing. An ack whose answer was lost is sent again by the
   client (F&O answers 200 to a repeated ack); if every attempt's answer is lost, F&O does not
   offer the message again and its record stays ExportFailed, naming the ack, the blob in
   place.
6. **Record Acked** (a message given up stays ExportFailed, with ``acked_at``). *Fails*:
   the blob is in place and F&O is done; the record keeps saying Downloaded.

A record write refused because another writer changed it (a tick that overran its lease)
leaves the message to that writer; one whose answer was lost is recognised as ours (its
``write_id``) and the steps go on. A dequeue that fails ends the route's tick; the next tick
starts again.

The rooms: :mod:`.tick` (the lease, the dequeue loop, one message's steps in order),
:mod:`.download` (steps 2 to 4), :mod:`.unzip` (a package's members), :mod:`.ack` (steps 5
and 6), :mod:`.failures` (attempts counted, giving up), :mod:`.events` (log ids, error texts,
the ``export_failed`` event), :mod:`.models` (the policy, the tick's counts); the staged-block
writer is :mod:`shared.clients.storage.blocks`.

Scheduled package exports (``PACKAGE_EXPORT_ROUTES``, the DMF package API) run in the same
tick, after the recurring routes: :mod:`.scheduled` (the lease, the route's row, the due
slot), :mod:`.slots` (which slot is due), :mod:`.package_send` (ExportToPackage, at most once
per slot), :mod:`.package_follow` (F&O's status, then the package into the container); each
module names the failure at each step and what recovers it.
"""

from shared.flows.export.models import ExportPolicy, ExportTickResult
from shared.flows.export.scheduled import PackageExporter
from shared.flows.export.tick import Exporter

__all__ = ["ExportPolicy", "ExportTickResult", "Exporter", "PackageExporter"]

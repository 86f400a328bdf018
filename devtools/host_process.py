"""`python -m devtools.host_process`: the app's own functions in the local host, in a process
of their own, until SIGTERM (or SIGINT).

For harnesses that kill the host (SIGKILL) and start it again, as a crash would: the chaos
benchmark (``bench/chaos.py``). Settings come from the environment, as in Azure: the storage
of the blob trigger queue, the poison queue and the app is ``IntegrationStorage``. Blob events
arrive at ``/runtime/webhooks/blobs`` (``devtools.event_grid`` posts them); ``--host-id`` names
the blob trigger queue, so a host started again with the same id runs what a killed one left.
``--poll-blobs`` is the fallback that lists the containers instead; with ``--fire-existing`` a
fresh host then fires for every blob already in the inbound container, as Event Grid
re-delivers the events a dead host never acknowledged.

One line goes to stdout once the host serves: ``ready http=<url>``; logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from devtools.lifecycle import wait_for_signals

_LOGGER = logging.getLogger(__name__)
STORAGE_SETTING = "IntegrationStorage"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.host_process", description=__doc__.split("\n")[0]
    )
    add = parser.add_argument
    add("--http-port", type=int, default=7071, help="port of /api (0: any free one)")
    add("--host-id", default=None, help="names the blob trigger queue (default: a new one)")
    add(
        "--poll-blobs",
        action="store_true",
        help="fallback: list the blob containers instead of receiving Event Grid events",
    )
    add("--blob-scan-interval", type=float, default=1.0, help="seconds between listings")
    add(
        "--timer-interval",
        type=float,
        default=None,
        help="fixed seconds between timer runs (default: each timer's NCRONTAB schedule)",
    )
    add(
        "--fire-existing",
        action="store_true",
        help="with --poll-blobs: fire for blobs present at start too",
    )
    add("--max-parallel", type=int, default=4, help="blob invocations at once")
    add("--poison-threshold", type=int, default=5, help="tries of a blob before the poison queue")
    add("--function-key", default=None, help="enforce this function key on /api")
    add("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.fire_existing and not args.poll_blobs:
        parser.error("--fire-existing is an option of the polling fallback: add --poll-blobs")
    return args


def _stop(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the host until SIGTERM or SIGINT; 2 when ``IntegrationStorage`` is not set."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s %(message)s",
    )
    connection = os.environ.get(STORAGE_SETTING)
    if not connection:
        sys.stderr.write(
            f"{STORAGE_SETTING} is not set: the host needs the storage connection string of "
            "the blob trigger (e.g. Azurite's, from devtools.azurite).\n"
        )
        return 2
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    from devtools.local_host import LocalHost
    from function_app import app

    with LocalHost(
        app,
        storage_connection_string=connection,
        http_port=args.http_port,
        host_id=args.host_id,
        poll_blobs=args.poll_blobs,
        blob_scan_interval=args.blob_scan_interval,
        timer_interval=args.timer_interval,
        function_key=args.function_key,
        poison_threshold=args.poison_threshold,
        max_degree_of_parallelism=args.max_parallel,
        fire_existing=args.fire_existing,
    ) as host:
        sys.stdout.write(f"ready http={host.http_url}\n")
        sys.stdout.flush()
        _LOGGER.info("host process ready pid=%s http=%s", os.getpid(), host.http_url)
        # The with block stops the host on the way out.
        return wait_for_signals(signal.SIGTERM, signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())

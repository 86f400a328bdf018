"""`python -m devtools.d365_emulator`: run the emulator standalone until Ctrl+C."""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
from pathlib import Path

from devtools.lifecycle import wait_for_signals

from ._config import load_config
from ._emulator import Emulator
from ._models import Knobs, MessageIdFormat

_EXAMPLE = Path(__file__).with_name("jobs.example.json")


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - the CLI's user-facing output


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.d365_emulator",
        description="A local D365 F&O environment with its Entra token endpoint and fault knobs.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8443, help="0 picks a free port")
    add("--tls", action=argparse.BooleanOptionalAction, default=True, help="HTTPS with a test CA")
    add(
        "--ca-file",
        type=Path,
        default=Path(".local/d365-emulator-ca.pem"),
        help="where to write the CA PEM (with --tls)",
    )
    add("--jobs", type=Path, default=_EXAMPLE, help="tenant, apps and jobs (JSON)")
    add("--latency-ms", type=int, default=0, help="delay before every F&O answer")
    add(
        "--state-seconds",
        type=float,
        default=3.0,
        help="seconds in each of Enqueued, Preprocessing and Processing",
    )
    add("--clock-speed", type=float, default=1.0, help="emulator seconds per real second")
    add("--throttle-fraction", type=float, default=0.0, help="share of F&O calls answered 429")
    add("--retry-after", type=int, default=1, help="Retry-After seconds on 429")
    add("--error-fraction", type=float, default=0.0, help="share of F&O calls answered 5xx")
    add("--error-status", type=int, default=503, choices=(500, 502, 503, 504))
    add("--drop-fraction", type=float, default=0.0, help="share of F&O calls dropped unanswered")
    add("--max-enqueue-mb", type=float, default=None, help="answer 413 above this size")
    add("--message-id-format", choices=[f.value for f in MessageIdFormat], default="quoted")
    add(
        "--status-variants",
        action="store_true",
        help="spell PreProcessing and PostProcessingError as RIS does",
    )
    add(
        "--execution-errors-raw",
        action="store_true",
        help="unescaped quotes and newlines inside GetExecutionErrors messages",
    )
    add("--download-http", action="store_true", help="http:// DownloadLocation on dequeue")
    add(
        "--download-mib-s",
        type=float,
        default=0.0,
        help="send export downloads no faster than this many MiB/s (0: no limit)",
    )
    add(
        "--export",
        action="append",
        default=[],
        metavar="ACTIVITY=FILE",
        help="queue FILE as an export of job ACTIVITY for dequeue (repeatable; the file is read "
        "at each download, never copied)",
    )
    add(
        "--export-package",
        default=None,
        metavar="FILE",
        help="serve FILE as the package of every ExportToPackage (linked, never read whole)",
    )
    add(
        "--package-export-seconds",
        type=float,
        default=2.0,
        help="emulator seconds an ExportToPackage execution stays Executing",
    )
    add(
        "--package-url-delay-seconds",
        type=float,
        default=1.0,
        help="emulator seconds GetExportedPackageUrl stays empty after success",
    )
    add(
        "--user-max-concurrent",
        type=int,
        default=None,
        help="F&O requests of one user at once before 429 (F&O: 52; default no limit)",
    )
    add(
        "--user-max-requests",
        type=int,
        default=None,
        help="F&O requests of one user per window before 429 (F&O: 6000; default no limit)",
    )
    add("--user-window-seconds", type=float, default=300.0, help="the window of the above")
    add(
        "--user-retry-after-max",
        type=int,
        default=300,
        help="the most a Retry-After grows to while a user calls before it has passed",
    )
    add(
        "--no-retry-after-growth",
        action="store_true",
        help="a user calling before its Retry-After has passed is refused only by the limits",
    )
    add("--seed", type=int, default=0, help="seed of the fault fractions")
    return parser


def _knobs(args: argparse.Namespace) -> Knobs:
    max_bytes = None if args.max_enqueue_mb is None else int(args.max_enqueue_mb * 1024 * 1024)
    return Knobs(
        latency_ms=args.latency_ms,
        throttle_fraction=args.throttle_fraction,
        retry_after=args.retry_after,
        error_fraction=args.error_fraction,
        error_status=args.error_status,
        drop_fraction=args.drop_fraction,
        max_enqueue_bytes=max_bytes,
        enqueued_seconds=args.state_seconds,
        preprocessing_seconds=args.state_seconds,
        processing_seconds=args.state_seconds,
        status_variants=args.status_variants,
        message_id_format=MessageIdFormat(args.message_id_format),
        execution_errors_raw=args.execution_errors_raw,
        download_location_http=args.download_http,
        download_mib_per_s=args.download_mib_s,
        export_package_path=args.export_package,
        package_export_seconds=args.package_export_seconds,
        package_url_delay_seconds=args.package_url_delay_seconds,
        user_max_concurrent=args.user_max_concurrent,
        user_max_requests=args.user_max_requests,
        user_window_seconds=args.user_window_seconds,
        user_retry_after_max=args.user_retry_after_max,
        user_retry_after_growth=not args.no_retry_after_growth,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, start the emulator, wait for Ctrl+C."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # SIGTERM ends the run like Ctrl+C, so the work folder is cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = load_config(args.jobs)
    emulator = Emulator(
        config.jobs,
        config.apps,
        tenant_id=config.tenant_id,
        tls=args.tls,
        host=args.host,
        port=args.port,
        knobs=_knobs(args),
    )
    with emulator:
        emulator.clock.speed = args.clock_speed
        for spec in args.export:
            activity, _, name = spec.partition("=")
            try:
                message_id = emulator.add_export_file(activity, Path(name))
            except (KeyError, ValueError, OSError) as exc:
                raise SystemExit(f"--export {spec}: no such job or file ({exc!r})") from None
            _say(f"  export {message_id} queued on job {activity}")
        if emulator.ca_bundle:
            args.ca_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(emulator.ca_bundle, args.ca_file)
        _say(f"D365 emulator  base URL:       {emulator.base_url}")
        _say(f"               authority host: {emulator.authority_host}")
        _say(f"               tenant:         {emulator.tenant_id}")
        if emulator.ca_bundle:
            _say(f"               CA bundle:      {args.ca_file.resolve()}")
            _say(f"  export REQUESTS_CA_BUNDLE={args.ca_file.resolve()}")
        for job in emulator.jobs:
            _say(f"  job {job.activity_id}  {job.entity or '(data package)'}  {job.name}")
        _say("Ctrl+C stops it.")
        wait_for_signals(signal.SIGTERM, signal.SIGINT)
        _say("stopping")


if __name__ == "__main__":
    main()

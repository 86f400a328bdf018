"""Phase 2, after the code: deploy infra/app/eventsubscription.bicep alone (the BlobCreated
subscription to enqueue_blob), once the host has its ``blobs_extension`` key.

Usage::

    python scripts/deploy/event_subscription.py          # pipeline, or by hand
    python scripts/deploy/event_subscription.py --azd    # the azd postdeploy hook (any OS)

Values: RESOURCE_GROUP and phase 1's outputs as FUNCTION_APP, FUNCTION_HOST, SYSTEM_TOPIC,
STORAGE_ACCOUNT, INBOUND_CONTAINER, DEAD_LETTER_CONTAINER (scripts/deploy/phase1.py writes
them to dist/phase1.env by hand); with ``--azd`` from azd's environment instead
(AZURE_RESOURCE_GROUP and the outputs under their own names). Optional: INFRA_DIR (default: this
repository's), DEPLOYMENT_NAME, AZURE_SUBSCRIPTION_ID (the subscription of every az call; azd
sets it to the one it deployed to).

Every az error is shown as az printed it. One that waiting cannot cure (no permission, no such
resource, wrong subscription, not signed in) stops the run at once; others (the host still
starting) are shown and retried.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from phase1 import OUTPUTS

_LOGGER = logging.getLogger("event_subscription")
_REPO_INFRA = Path(__file__).resolve().parents[2] / "infra"
KEY_ATTEMPTS = 30
KEY_WAIT_SECONDS = 20.0
DEPLOY_ATTEMPTS = 3
DEPLOY_WAIT_SECONDS = 60.0
# Phase 1's outputs (scripts/deploy/phase1.py) that phase 2 reads.
_PHASE_ONE_VALUES = (
    "FUNCTION_APP",
    "FUNCTION_HOST",
    "SYSTEM_TOPIC",
    "STORAGE_ACCOUNT",
    "INBOUND_CONTAINER",
    "DEAD_LETTER_CONTAINER",
)
# Substrings of az errors that no wait cures.
FATAL_ERRORS = (
    "AuthorizationFailed",
    "AuthenticationFailed",
    "InvalidAuthenticationToken",
    "LinkedAuthorizationFailed",
    "ResourceNotFound",
    "ResourceGroupNotFound",
    "ParentResourceNotFound",
    "SubscriptionNotFound",
    "InvalidSubscriptionId",
    "az login",
    "does not have authorization",
)


class PhaseTwoError(RuntimeError):
    """Phase 2 cannot go on; the text says why and what to check."""


@dataclass(frozen=True)
class Target:
    """What phase 2 deploys, and where."""

    resource_group: str
    function_app: str
    function_host: str
    system_topic: str
    storage_account: str
    inbound_container: str
    dead_letter_container: str
    subscription: str | None
    infra_dir: Path
    deployment_name: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, azd: bool) -> Target:
        """The target from the pipeline's (or azd's) environment.

        :raises PhaseTwoError: naming every variable that is missing.
        """
        names = {"RESOURCE_GROUP": "AZURE_RESOURCE_GROUP" if azd else "RESOURCE_GROUP"}
        names.update({name: OUTPUTS[name] if azd else name for name in _PHASE_ONE_VALUES})
        # azd: whatever case it gives the outputs' names (Windows ignores case anyway).
        found = {key.lower() if azd else key: value for key, value in environ.items()}
        value = {
            name: found.get(source.lower() if azd else source, "") for name, source in names.items()
        }
        missing = [names[name] for name, text in value.items() if not text]
        if missing:
            where = "azd's environment (azd env get-values)" if azd else "the environment"
            raise PhaseTwoError(
                f"{', '.join(missing)} not set in {where}: run phase 1 first "
                "(docs/deploy.md, 'First deployment'); by hand, source dist/phase1.env"
            )
        return cls(
            resource_group=value["RESOURCE_GROUP"],
            function_app=value["FUNCTION_APP"],
            function_host=value["FUNCTION_HOST"],
            system_topic=value["SYSTEM_TOPIC"],
            storage_account=value["STORAGE_ACCOUNT"],
            inbound_container=value["INBOUND_CONTAINER"],
            dead_letter_container=value["DEAD_LETTER_CONTAINER"],
            subscription=environ.get("AZURE_SUBSCRIPTION_ID") or None,
            infra_dir=Path(environ.get("INFRA_DIR") or _REPO_INFRA),
            deployment_name=environ.get("DEPLOYMENT_NAME") or "d365-phase2",
        )


@dataclass(frozen=True)
class AzResult:
    """One az run: exit code, stdout, stderr."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def fatal(self) -> bool:
        """The error is one that waiting cannot cure."""
        return any(text in self.stderr for text in FATAL_ERRORS)


class AzureCli:
    """Runs az, always in the target's subscription when one is given."""

    def __init__(self, subscription: str | None) -> None:
        # On Windows az is az.cmd: which() finds it through PATHEXT.
        executable = shutil.which("az")
        if executable is None:
            raise PhaseTwoError("the Azure CLI (az) is not on PATH: install it, then az login")
        self._executable = executable
        self._subscription = ["--subscription", subscription] if subscription else []

    def run(self, *args: str) -> AzResult:
        """Run ``az <args>``; its errors are logged as az printed them."""
        done = subprocess.run(  # noqa: S603 - az with our own arguments, no shell
            [self._executable, *args, *self._subscription],
            capture_output=True,
            text=True,
            check=False,
        )
        result = AzResult(done.returncode, done.stdout, done.stderr.strip())
        if result.returncode != 0:
            _LOGGER.error("az %s failed:\n%s", " ".join(args[:3]), result.stderr)
        return result


def wait_for_trigger_key(
    az: AzureCli, target: Target, *, sleep: Callable[[float], object] = time.sleep
) -> None:
    """Return once the host has its blobs_extension key (asked for its presence, never read).

    :raises PhaseTwoError: at once for an error no wait cures, or after the last attempt.
    """
    last_error = ""
    for attempt in range(1, KEY_ATTEMPTS + 1):
        result = az.run(
            "functionapp", "keys", "list",
            "--resource-group", target.resource_group,
            "--name", target.function_app,
            "--query", "systemKeys.blobs_extension != null",
            "--output", "json",
        )  # fmt: skip
        if result.returncode == 0 and result.stdout.strip() == "true":
            return
        if result.fatal:
            raise PhaseTwoError(f"az functionapp keys list: {result.stderr}")
        last_error = result.stderr
        _LOGGER.info(
            "waiting for the host to register the blob trigger (%d/%d)", attempt, KEY_ATTEMPTS
        )
        _wake(target.function_host)
        sleep(KEY_WAIT_SECONDS)
    reason = f"az's last error: {last_error}" if last_error else "no error: the key is not there"
    raise PhaseTwoError(
        f"No blobs_extension key on {target.function_app} after {KEY_ATTEMPTS} attempts "
        f"({reason}). Check that enqueue_blob is indexed: the Functions list in the portal, and "
        "the host's errors in Application Insights (docs/deploy.md, 'Smoke test')"
    )


def _wake(host: str) -> None:
    """One request to the site, so that a scaled-to-zero host starts."""
    try:
        with urllib.request.urlopen(f"https://{host}/", timeout=30):
            pass
    except OSError:
        return


def deploy_subscription(
    az: AzureCli, target: Target, *, sleep: Callable[[float], object] = time.sleep
) -> None:
    """Deploy eventsubscription.bicep alone; Event Grid validates the webhook on creation, which
    a host still warming up can miss, so a failure that may heal is retried.

    :raises PhaseTwoError: at once for an error no wait cures, or after the last attempt.
    """
    for attempt in range(1, DEPLOY_ATTEMPTS + 1):
        result = az.run(
            "deployment", "group", "create",
            "--resource-group", target.resource_group,
            "--name", target.deployment_name,
            "--template-file", str(target.infra_dir / "app" / "eventsubscription.bicep"),
            "--parameters",
            f"systemTopicName={target.system_topic}",
            f"functionAppName={target.function_app}",
            f"storageAccountName={target.storage_account}",
            f"inboundContainerName={target.inbound_container}",
            f"deadLetterContainerName={target.dead_letter_container}",
            "--output", "none",
        )  # fmt: skip
        if result.returncode == 0:
            _LOGGER.info("Event Grid subscription enqueue-blob deployed on %s", target.system_topic)
            return
        if result.fatal or attempt == DEPLOY_ATTEMPTS:
            raise PhaseTwoError(f"az deployment group create (phase 2): {result.stderr}")
        _LOGGER.info("phase 2 attempt %d/%d failed; retrying in 60 s", attempt, DEPLOY_ATTEMPTS)
        sleep(DEPLOY_WAIT_SECONDS)


def _log_to_stdout() -> None:
    """Progress and az's errors on stdout, one message a line, as the pipeline log shows them."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    _LOGGER.handlers[:] = [handler]
    _LOGGER.setLevel(logging.INFO)
    _LOGGER.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run phase 2; on failure print the reason as an Azure Pipelines error and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--azd", action="store_true", help="read the values azd keeps")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    _log_to_stdout()
    try:
        target = Target.from_env(os.environ, azd=args.azd)
        az = AzureCli(target.subscription)
        wait_for_trigger_key(az, target)
        deploy_subscription(az, target)
    except PhaseTwoError as error:
        # One line: the agent reads a logging command up to the line's end.
        flat = " ".join(str(error).split())
        sys.stdout.write(f"##vso[task.logissue type=error]{flat}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

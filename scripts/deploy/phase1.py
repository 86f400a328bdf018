"""Phase 1's outputs (infra/main.bicep) for the steps after it.

Usage::

    python scripts/deploy/phase1.py OUTPUTS_JSON ENV_FILE

OUTPUTS_JSON is the deployment's ``properties.outputs``. Prints one Azure Pipelines variable per
output (``##vso[task.setvariable]``, read by the later steps of the job) and the names a person
needs next, and writes ENV_FILE: ``export NAME=value`` lines to ``source`` before running
event_subscription.py or smoke-test.sh by hand. ``--azd`` mode of event_subscription.py reads
the same outputs from azd's environment, where azd puts them under their output names.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# Environment variable of the later steps -> output of infra/main.bicep.
OUTPUTS = {
    "FUNCTION_APP": "functionAppName",
    "FUNCTION_HOST": "functionAppHostName",
    "SYSTEM_TOPIC": "systemTopicName",
    "STORAGE_ACCOUNT": "storageAccountName",
    "KEY_VAULT": "keyVaultName",
    "INBOUND_CONTAINER": "inboundContainerName",
    "DEAD_LETTER_CONTAINER": "deadLetterContainerName",
}


def env_lines(outputs: Mapping[str, Mapping[str, object]]) -> list[str]:
    """``export NAME=value`` for every output the later steps read."""
    return [
        f"export {name}={shlex.quote(str(outputs[output]['value']))}"
        for name, output in OUTPUTS.items()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the pipeline variables and the names, and write the env file."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        sys.stderr.write("usage: phase1.py OUTPUTS_JSON ENV_FILE\n")
        return 2
    outputs = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    for output in OUTPUTS.values():
        sys.stdout.write(f"##vso[task.setvariable variable={output}]{outputs[output]['value']}\n")
    lines = env_lines(outputs)
    Path(args[1]).write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.stdout.write(f"Deployed. The names the later commands use (also in {args[1]}):\n")
    sys.stdout.writelines(f"  {line.removeprefix('export ')}\n" for line in lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

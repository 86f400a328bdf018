#!/usr/bin/env bash
# Deploy stage, phase 1: everything in infra/main.bicep (the Event Grid subscription is not in
# it; see event-subscription.sh). Validates first, then deploys, then hands the outputs to the
# later steps of the job as variables.
#   RESOURCE_GROUP, LOCATION, INFRA_DIR, the variable group values (scripts/deploy/parameters.py)
#   D365_CLIENT_SECRET  optional: written to Key Vault when set; unset keeps the vault's secret
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
parameters="$AGENT_TEMPDIRECTORY/deploy.parameters.json"
python3 "$here/parameters.py" "$parameters"
# The secret goes through a file readable by this user only, never on a command line.
secret_file="$AGENT_TEMPDIRECTORY/deploy.secret.json"
trap 'rm -f "$secret_file"' EXIT
secret_args=()
# An undefined secret variable reaches the script as its macro text, "$(d365ClientSecret)".
if [ -n "${D365_CLIENT_SECRET:-}" ] && [ "${D365_CLIENT_SECRET#\$(}" = "$D365_CLIENT_SECRET" ]; then
  (umask 077 && python3 -c 'import json, os, sys; json.dump({"d365ClientSecret": {"value": os.environ["D365_CLIENT_SECRET"]}}, open(sys.argv[1], "w"))' "$secret_file")
  secret_args=(--parameters "@$secret_file")
fi
az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --output none
az deployment group validate \
  --resource-group "$RESOURCE_GROUP" \
  --name "d365-phase1-$BUILD_BUILDID" \
  --template-file "$INFRA_DIR/main.bicep" \
  --parameters "@$parameters" \
  "${secret_args[@]}" \
  --output none
outputs="$AGENT_TEMPDIRECTORY/phase1.outputs.json"
az deployment group create \
  --resource-group "$RESOURCE_GROUP" \
  --name "d365-phase1-$BUILD_BUILDID" \
  --template-file "$INFRA_DIR/main.bicep" \
  --parameters "@$parameters" \
  "${secret_args[@]}" \
  --query properties.outputs --output json > "$outputs"
python3 - "$outputs" <<'PY'
import json, sys
outputs = json.load(open(sys.argv[1], encoding="utf-8"))
for name in ("functionAppName", "functionAppHostName", "systemTopicName",
             "storageAccountName", "inboundContainerName", "deadLetterContainerName"):
    print(f"##vso[task.setvariable variable={name}]{outputs[name]['value']}")
PY

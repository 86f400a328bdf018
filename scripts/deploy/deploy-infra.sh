#!/usr/bin/env bash
# Phase 1: everything in infra/main.bicep (the Event Grid subscription is phase 2, after the
# code: event_subscription.py). Checks the entries and the resource group's region, validates,
# deploys, then hands the outputs on: as pipeline variables, and in $work/phase1.env for a run by
# hand (docs/deploy.md, "By hand").
#   RESOURCE_GROUP, LOCATION, INFRA_DIR, the variable group values (scripts/deploy/parameters.py)
#   D365_CLIENT_SECRET, D365_CLIENT_SECRET_EXPIRES  optional: the secret and its end date. Written
#       to Key Vault only while the vault holds no client secret (the first deployment): a later
#       run never undoes a rotation done in Key Vault (docs/deploy.md, "Rotating")
#   ALERT_EMAIL, ALERT_WEBHOOK_URL  optional: who the alerts reach
#   AGENT_TEMPDIRECTORY  where the files go (in the pipeline its temp folder; by hand dist/)
#   BUILD_BUILDID        names the deployment d365-phase1-<id> (by hand: the UTC time)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work="${AGENT_TEMPDIRECTORY:-$here/../../dist}"
mkdir -p "$work"
deployment="d365-phase1-${BUILD_BUILDID:-$(date -u +%Y%m%d%H%M%S)}"
parameters="$work/deploy.parameters.json"
secure="$work/deploy.secure.json"
trap 'rm -f "$secure"' EXIT
# Every entry is checked before the first az call.
python3 "$here/parameters.py" "$parameters"
bash "$here/resource-group.sh" --create

# Azure Pipelines passes an undefined variable on as its macro text, "$(name)".
defined() { [ -n "${1:-}" ] && [ "${1#\$(}" = "$1" ]; }
# Whether this deployment's vault already holds the client secret, read through ARM (which the
# deployment identity may do, unlike reading the secret's value).
vault_has_secret() {
  local vault="" errors
  if defined "${KEY_VAULT_NAME:-}"; then vault="$KEY_VAULT_NAME"; fi
  # Called as an if's condition, where set -e does not apply: a failure must stop the run here,
  # or the secret would be written over a rotation.
  if [ -z "$vault" ] && ! vault=$(az deployment group list --resource-group "$RESOURCE_GROUP" --query \
      "sort_by([?starts_with(name, 'd365-phase1-') && properties.provisioningState == 'Succeeded'], &properties.timestamp)[-1].properties.outputs.keyVaultName.value" \
      --output tsv); then
    echo "##vso[task.logissue type=error]Could not list the deployments of $RESOURCE_GROUP to find the Key Vault (az's error above); set the entry keyVaultName to skip the search"
    exit 1
  fi
  [ -n "$vault" ] || return 1
  errors=$(mktemp)
  if az resource show --resource-group "$RESOURCE_GROUP" --namespace Microsoft.KeyVault \
      --parent "vaults/$vault" --resource-type secrets --name d365-client-secret \
      --query id --output none 2>"$errors"; then
    rm -f "$errors"
    echo "##vso[task.logissue type=warning]Key Vault $vault already holds d365-client-secret: it is kept, not overwritten with the entry d365ClientSecret (a rotation is never undone). Remove the entry; rotate in Key Vault (docs/deploy.md, Rotating the client secret)"
    return 0
  fi
  if grep -q "NotFound" "$errors"; then rm -f "$errors"; return 1; fi
  cat "$errors" >&2
  rm -f "$errors"
  echo "##vso[task.logissue type=error]Could not tell whether Key Vault $vault holds d365-client-secret (az's error above)"
  exit 1
}
keep=()
if defined "${D365_CLIENT_SECRET:-}" && vault_has_secret; then keep=(--keep-vault-secret); fi
python3 "$here/parameters.py" "$parameters" --secure "$secure" ${keep[@]+"${keep[@]}"}
# The secure values reach az in a file readable by this user only, never on a command line.
secure_args=()
if [ -f "$secure" ]; then secure_args=(--parameters "@$secure"); fi

az deployment group validate \
  --resource-group "$RESOURCE_GROUP" \
  --name "$deployment" \
  --template-file "$INFRA_DIR/main.bicep" \
  --parameters "@$parameters" \
  ${secure_args[@]+"${secure_args[@]}"} \
  --output none
outputs="$work/phase1.outputs.json"
az deployment group create \
  --resource-group "$RESOURCE_GROUP" \
  --name "$deployment" \
  --template-file "$INFRA_DIR/main.bicep" \
  --parameters "@$parameters" \
  ${secure_args[@]+"${secure_args[@]}"} \
  --query properties.outputs --output json > "$outputs"
python3 "$here/phase1.py" "$outputs" "$work/phase1.env"

#!/usr/bin/env bash
# Is the resource group RESOURCE_GROUP there, in region LOCATION? Run before anything is deployed.
#   exit 0: it exists in LOCATION (with --create: or it was just created there)
#   exit 3: it does not exist (without --create)
#   exit 4: it is in another region (printed)
#   exit 1: az failed: its own error is printed
# An existing group is never re-created: `az group create` on it would replace the tags an
# administrator set (docs/deploy.md, "Before you start": groups made beforehand).
#   RESOURCE_GROUP, LOCATION; AZURE_SUBSCRIPTION_ID optional (otherwise az's current subscription)
set -euo pipefail
subscription=()
if [ -n "${AZURE_SUBSCRIPTION_ID:-}" ]; then subscription=(--subscription "$AZURE_SUBSCRIPTION_ID"); fi
# az and ARM spell regions in lower case without spaces ("West Europe" is westeurope).
wanted=$(printf '%s' "$LOCATION" | tr -d ' ' | tr '[:upper:]' '[:lower:]')
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
if actual=$(az group show --name "$RESOURCE_GROUP" ${subscription[@]+"${subscription[@]}"} --query location \
    --output tsv 2>"$errors"); then
  if [ "$actual" != "$wanted" ]; then
    echo "##vso[task.logissue type=error]location is '$LOCATION' but resource group $RESOURCE_GROUP is in '$actual': set the entry location to $actual (every resource is deployed in its group's region), or use a group in $wanted (docs/deploy.md, Before you start)"
    exit 4
  fi
  echo "Resource group $RESOURCE_GROUP is in $actual"
  exit 0
fi
if grep -q "ResourceGroupNotFound" "$errors"; then
  if [ "${1:-}" = --create ]; then
    az group create --name "$RESOURCE_GROUP" --location "$wanted" ${subscription[@]+"${subscription[@]}"} --output none
    echo "Resource group $RESOURCE_GROUP created in $wanted"
    exit 0
  fi
  exit 3
fi
cat "$errors" >&2
echo "##vso[task.logissue type=error]Could not read resource group $RESOURCE_GROUP (az's error above): check the subscription, and that the identity has a role on the group (docs/deploy.md, Before you start)"
exit 1

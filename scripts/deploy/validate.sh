#!/usr/bin/env bash
# Validate_<env> stage: check the entries and the resource group, validate the deployment against
# the group and show what it would change (what-if). Nothing is deployed, no secret is read.
#   RESOURCE_GROUP, LOCATION, INFRA_DIR, the variable group values (scripts/deploy/parameters.py)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work="${AGENT_TEMPDIRECTORY:-$here/../../dist}"
parameters="$work/validate.parameters.json"
deployment="d365-validate-${BUILD_BUILDID:-$(date -u +%Y%m%d%H%M%S)}"
python3 "$here/parameters.py" "$parameters"
status=0
bash "$here/resource-group.sh" || status=$?
if [ "$status" = 3 ]; then
  # validate and what-if need the group; deploy-infra.sh creates it, then validates again right
  # before it deploys.
  echo "##vso[task.logissue type=warning]Resource group $RESOURCE_GROUP does not exist yet: validated at deployment, before anything is created in it"
  exit 0
fi
[ "$status" = 0 ] || exit "$status"
az deployment group validate \
  --resource-group "$RESOURCE_GROUP" \
  --name "$deployment" \
  --template-file "$INFRA_DIR/main.bicep" \
  --parameters "@$parameters" \
  --output none
az deployment group what-if \
  --resource-group "$RESOURCE_GROUP" \
  --name "$deployment" \
  --template-file "$INFRA_DIR/main.bicep" \
  --parameters "@$parameters"

#!/usr/bin/env bash
# Build stage, once per environment: validate the deployment against the environment's
# resource group and show what it would change (what-if). Nothing is deployed.
#   RESOURCE_GROUP, INFRA_DIR, the variable group values (scripts/deploy/parameters.py)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
parameters="$AGENT_TEMPDIRECTORY/validate.parameters.json"
python3 "$here/parameters.py" "$parameters"
if [ "$(az group exists --name "$RESOURCE_GROUP")" != true ]; then
  # validate and what-if need the group; deploy-infra.sh validates again right before it
  # deploys, once it has created the group.
  echo "##vso[task.logissue type=warning]Resource group $RESOURCE_GROUP does not exist yet: validated at deployment, before anything is created in it"
  exit 0
fi
az deployment group validate \
  --resource-group "$RESOURCE_GROUP" \
  --name "d365-validate-$BUILD_BUILDID" \
  --template-file "$INFRA_DIR/main.bicep" \
  --parameters "@$parameters" \
  --output none
az deployment group what-if \
  --resource-group "$RESOURCE_GROUP" \
  --name "d365-whatif-$BUILD_BUILDID" \
  --template-file "$INFRA_DIR/main.bicep" \
  --parameters "@$parameters"

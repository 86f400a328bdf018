#!/usr/bin/env bash
# azd postdeploy hook (azure.yaml): phase 2 after `azd deploy`, from the values azd keeps in its
# environment (the outputs of infra/main.bicep, with their names as the template spells them).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RESOURCE_GROUP="$AZURE_RESOURCE_GROUP" \
FUNCTION_APP="$functionAppName" \
FUNCTION_HOST="$functionAppHostName" \
SYSTEM_TOPIC="$systemTopicName" \
STORAGE_ACCOUNT="$storageAccountName" \
INBOUND_CONTAINER="$inboundContainerName" \
DEAD_LETTER_CONTAINER="$deadLetterContainerName" \
INFRA_DIR="$here/../../infra" \
DEPLOYMENT_NAME="d365-eventsubscription" \
  "$here/event-subscription.sh"

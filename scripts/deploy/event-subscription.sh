#!/usr/bin/env bash
# Phase 2, after the code: deploy infra/app/eventsubscription.bicep alone (the BlobCreated
# subscription to enqueue_blob). Nothing else is re-PUT while Event Grid validates the webhook.
# Used by the pipeline and by the azd postdeploy hook (scripts/deploy/azd-postdeploy.sh).
#   RESOURCE_GROUP, FUNCTION_APP, FUNCTION_HOST, SYSTEM_TOPIC, STORAGE_ACCOUNT,
#   INBOUND_CONTAINER, DEAD_LETTER_CONTAINER, INFRA_DIR, DEPLOYMENT_NAME
set -euo pipefail
# The blobs_extension key exists once the host has started the blob trigger; ask for its
# presence only, never its value.
for attempt in $(seq 1 30); do
  present=$(az functionapp keys list --resource-group "$RESOURCE_GROUP" --name "$FUNCTION_APP" \
    --query "systemKeys.blobs_extension != null" --output json 2>/dev/null || echo false)
  [ "$present" = true ] && break
  if [ "$attempt" = 30 ]; then
    echo "##vso[task.logissue type=error]No blobs_extension key on $FUNCTION_APP: check that enqueue_blob is indexed (Functions list in the portal, Application Insights traces)"
    exit 1
  fi
  echo "Waiting for the host to register the blob trigger ($attempt/30)"
  curl --silent --output /dev/null --max-time 30 "https://$FUNCTION_HOST/" || true
  sleep 20
done
# Event Grid validates the webhook on creation; a host still warming up can miss it.
for attempt in 1 2 3; do
  if az deployment group create \
      --resource-group "$RESOURCE_GROUP" \
      --name "$DEPLOYMENT_NAME" \
      --template-file "$INFRA_DIR/app/eventsubscription.bicep" \
      --parameters systemTopicName="$SYSTEM_TOPIC" functionAppName="$FUNCTION_APP" \
        storageAccountName="$STORAGE_ACCOUNT" inboundContainerName="$INBOUND_CONTAINER" \
        deadLetterContainerName="$DEAD_LETTER_CONTAINER" \
      --output none; then
    exit 0
  fi
  echo "Phase 2 attempt $attempt failed; retrying in 60 s"
  sleep 60
done
exit 1

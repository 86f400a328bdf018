#!/usr/bin/env bash
# After phase 2: GET /api/health with the default function key until it reports healthy. Health
# includes one authorized F&O call (d365_access): green means F&O accepts the app.
#   RESOURCE_GROUP, FUNCTION_APP, FUNCTION_HOST (by hand: source dist/phase1.env)
set -euo pipefail
key=$(az functionapp keys list --resource-group "$RESOURCE_GROUP" --name "$FUNCTION_APP" \
  --query functionKeys.default --output tsv)
# In Azure Pipelines (TF_BUILD=True): mask the key in every later log line, should anything
# print it. By hand this would print the key itself, so not there.
if [ "${TF_BUILD:-}" = True ]; then echo "##vso[task.setsecret]$key"; fi
body_file=$(mktemp)
trap 'rm -f "$body_file"' EXIT
for attempt in $(seq 1 10); do
  # The key goes in a header read from stdin: not in the URL, not in argv.
  status=$(curl --silent --show-error --max-time 30 --output "$body_file" \
    --write-out '%{http_code}' --header @- "https://$FUNCTION_HOST/api/health" \
    <<<"x-functions-key: $key") || status=000
  if [ "$status" = 200 ] && python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("healthy") is True else 1)' "$body_file" 2>/dev/null; then
    echo "Healthy: $(head -c 2000 "$body_file")"
    exit 0
  fi
  echo "Attempt $attempt/10: HTTP $status $(head -c 500 "$body_file")"
  sleep 15
done
echo "##vso[task.logissue type=error]https://$FUNCTION_HOST/api/health did not report healthy; see docs/deploy.md, Smoke test"
exit 1

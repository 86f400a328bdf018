#!/usr/bin/env bash
# After phase 2: GET /api/health until it reports healthy. Health includes one authorized F&O
# call (d365_access): green means F&O accepts the app.
#   RESOURCE_GROUP, FUNCTION_APP, FUNCTION_HOST (by hand: source dist/phase1.env)
#   HTTP_AUTH          key (default): the default function key proves the call
#                      entra: first, a forged X-MS-CLIENT-PRINCIPAL without a token must get 401
#                      from App Service authentication; then the signed-in identity's token for
#                      api://SIGNIN_CLIENT_ID (it needs the app role Integration.Reader)
set -euo pipefail
body_file=$(mktemp)
trap 'rm -f "$body_file"' EXIT
if [ "${HTTP_AUTH:-key}" = entra ]; then
  # A principal no platform issued, holding the operator role: the platform strips it, and with
  # no token answers 401; anything else means the app is not guarded (docs/auth.md).
  forged=$(printf '%s' '{"auth_typ":"aad","claims":[{"typ":"oid","val":"00000000-0000-0000-0000-000000000001"},{"typ":"roles","val":"Integration.Operator"}]}' | base64 | tr -d '\n')
  status=$(curl --silent --show-error --max-time 30 --output "$body_file" --write-out '%{http_code}' \
    --header "X-MS-CLIENT-PRINCIPAL: $forged" "https://$FUNCTION_HOST/api/counts") || status=000
  if [ "$status" != 401 ]; then
    echo "##vso[task.logissue type=error]A forged X-MS-CLIENT-PRINCIPAL without a token got HTTP $status, not 401: App Service authentication is not guarding https://$FUNCTION_HOST (docs/auth.md)"
    exit 1
  fi
  echo "Forged principal without a token: HTTP 401, as it must be"
  secret=$(az account get-access-token --resource "api://$SIGNIN_CLIENT_ID" \
    --query accessToken --output tsv)
  header="Authorization: Bearer $secret"
else
  secret=$(az functionapp keys list --resource-group "$RESOURCE_GROUP" --name "$FUNCTION_APP" \
    --query functionKeys.default --output tsv)
  header="x-functions-key: $secret"
fi
# In Azure Pipelines (TF_BUILD=True): mask the key or token in every later log line, should
# anything print it. By hand this would print it, so not there.
if [ "${TF_BUILD:-}" = True ]; then echo "##vso[task.setsecret]$secret"; fi
for attempt in $(seq 1 10); do
  # The credential goes in a header read from stdin: not in the URL, not in argv.
  status=$(curl --silent --show-error --max-time 30 --output "$body_file" \
    --write-out '%{http_code}' --header @- "https://$FUNCTION_HOST/api/health" \
    <<<"$header") || status=000
  if [ "$status" = 200 ] && python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("healthy") is True else 1)' "$body_file" 2>/dev/null; then
    echo "Healthy: $(head -c 2000 "$body_file")"
    exit 0
  fi
  echo "Attempt $attempt/10: HTTP $status $(head -c 500 "$body_file")"
  sleep 15
done
echo "##vso[task.logissue type=error]https://$FUNCTION_HOST/api/health did not report healthy; see docs/deploy.md, Smoke test"
exit 1

#!/usr/bin/env bash
# The app registration of HTTP_AUTH=entra, with its two app roles (signin-app-roles.json), made
# or brought up to date: run it again at will (docs/auth.md, "The app registration").
#   SIGNIN_APP_NAME   the registration's display name, e.g. d365int-api-dev (one per environment)
#   FUNCTION_HOST     the function app's host name: the sign-in's redirect URI is on it
# Prints SIGNIN_CLIENT_ID=<client id> for the variable group (or azd env set).
# Needs the right to create app registrations (Application Developer); setting
# appRoleAssignmentRequired needs to own the service principal, or Application Administrator.
set -euo pipefail
roles="$(dirname "$0")/signin-app-roles.json"
app_id=$(az ad app list --display-name "$SIGNIN_APP_NAME" --query "[0].appId" --output tsv)
if [ -z "$app_id" ]; then
  app_id=$(az ad app create --display-name "$SIGNIN_APP_NAME" --sign-in-audience AzureADMyOrg \
    --query appId --output tsv)
  echo "App registration $SIGNIN_APP_NAME created"
else
  echo "App registration $SIGNIN_APP_NAME exists: brought up to date"
fi
# The browser's sign-in takes an ID token (no client secret); programs get tokens for the
# application ID URI, v2.0 ones (the issuer authsettingsV2 names); idtyp tells a program's
# token from a person's.
az ad app update --id "$app_id" \
  --app-roles "@$roles" \
  --identifier-uris "api://$app_id" \
  --web-redirect-uris "https://$FUNCTION_HOST/.auth/login/aad/callback" \
  --enable-id-token-issuance true \
  --optional-claims '{"accessToken": [{"name": "idtyp"}]}' \
  --set api.requestedAccessTokenVersion=2
# A list, not a show: no service principal is an empty answer, and any other failure (no right
# to read the directory, the wrong tenant) stops the script with az's own error.
sp_id=$(az ad sp list --filter "appId eq '$app_id'" --query "[0].id" --output tsv)
if [ -z "$sp_id" ]; then
  az ad sp create --id "$app_id" --output none
fi
# Only people and programs holding one of the roles get a token for the app at all.
az ad sp update --id "$app_id" --set appRoleAssignmentRequired=true
echo "SIGNIN_CLIENT_ID=$app_id"

#!/usr/bin/env bash
# Before the first deployment (docs/deploy.md, "Before you start"): checks what the deployment
# needs and prints, for each thing missing, how to get it. Read only: it runs az show and list
# commands and changes nothing. Exits 1 when anything is missing, 2 on bad usage.
#
#   RESOURCE_GROUP, LOCATION   required: the group to deploy to and its region
#   DEPLOY_PATH                pipeline (default), azd or hand: the rights differ (see the guide)
#   SUBSCRIPTION_ID            optional: otherwise az's current subscription
#   D365_AUTH_MODE             secret (default) or managedIdentity
#   D365_TENANT_ID             secret mode: the tenant of the F&O environment
#   D365_CLIENT_ID             secret mode: the application (client) id registered in F&O
#   VNET_ENABLED               true: also the providers of the private network
#   HTTP_AUTH                  entra: also the sign-in's app registration (docs/auth.md)
#   SIGNIN_CLIENT_ID           with entra, once signin-app.sh made it: its client id
#   SIGNIN_TENANT_ID           with entra, when the registration is in another tenant
#   pipeline path, optional (the azure-devops extension of az):
#   DEVOPS_ORG                 https://dev.azure.com/<organization>
#   DEVOPS_PROJECT             the Azure DevOps project
#   ENVIRONMENT                dev (default): checks sc-d365-integration-<env> and the group
#                              d365-integration-<env>
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${RESOURCE_GROUP:-}" ] || [ -z "${LOCATION:-}" ]; then
  echo "usage: RESOURCE_GROUP=<group> LOCATION=<region> [DEPLOY_PATH=pipeline|azd|hand] bash $0" >&2
  echo "(the other variables are listed at the top of $0)" >&2
  exit 2
fi
deploy_path="${DEPLOY_PATH:-pipeline}"
auth_mode="${D365_AUTH_MODE:-secret}"
environment="${ENVIRONMENT:-dev}"
region=$(printf '%s' "$LOCATION" | tr -d ' ' | tr '[:upper:]' '[:lower:]')
missing=0
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

ok() { printf 'ok       %s\n' "$1"; }
note() { printf 'note     %s\n' "$1"; }
miss() {
  missing=$((missing + 1))
  printf 'MISSING  %s\n         fix: %s\n' "$1" "$2"
}
# az's own error, on one line.
az_error() { tr '\n' ' ' <"$errors" | sed 's/  */ /g; s/ $//'; }
# Whether the role list $1 (one a line) holds any of the roles that follow.
has_role() {
  local roles=$1 role
  shift
  for role in "$@"; do
    if printf '%s\n' "$roles" | grep -qxF "$role"; then return 0; fi
  done
  return 1
}

if ! command -v az >/dev/null; then
  miss "the Azure CLI (az)" "install it (https://learn.microsoft.com/cli/azure/install-azure-cli), then az login"
  exit 1
fi

# 1. Signed in, and the subscription.
subscription=()
if [ -n "${SUBSCRIPTION_ID:-}" ]; then subscription=(--subscription "$SUBSCRIPTION_ID"); fi
if ! account=$(az account show ${subscription[@]+"${subscription[@]}"} \
    --query "[id, tenantId, user.name, user.type]" --output tsv 2>"$errors"); then
  miss "signed in to Azure ($(az_error))" \
    "az login, then az account set --subscription <subscription id>"
  printf '\n%s missing. Fix it, then run this again.\n' "$missing"
  exit 1
fi
read -r sub tenant user user_type <<<"$account"
ok "signed in as $user; subscription $sub, tenant $tenant"
group_id="/subscriptions/$sub/resourceGroups/$RESOURCE_GROUP"

# 2. Resource providers: registering one needs rights on the whole subscription.
namespaces=(Microsoft.Web Microsoft.Storage Microsoft.EventGrid Microsoft.KeyVault
  Microsoft.Insights Microsoft.OperationalInsights Microsoft.ManagedIdentity)
if [ "${VNET_ENABLED:-false}" = true ]; then namespaces+=(Microsoft.Network Microsoft.App); fi
registered=()
for namespace in "${namespaces[@]}"; do
  state=$(az provider show --namespace "$namespace" --subscription "$sub" \
    --query registrationState --output tsv 2>"$errors") || state="unknown ($(az_error))"
  if [ "$state" = Registered ]; then
    registered+=("$namespace")
  else
    miss "resource provider $namespace is $state" \
      "someone with Owner or Contributor on the subscription runs: az provider register --namespace $namespace --subscription $sub"
  fi
done
if [ "${#registered[@]}" -gt 0 ]; then ok "providers registered: ${registered[*]}"; fi

# 3. Flex Consumption in the region.
if flex=$(az functionapp list-flexconsumption-locations --subscription "$sub" \
    --query "[].name" --output tsv 2>"$errors"); then
  if printf '%s\n' "$flex" | grep -qx "$region"; then
    ok "Flex Consumption is offered in $region"
  else
    miss "Flex Consumption in $region" \
      "use a region that offers it, for the resource group too: $(printf '%s' "$flex" | tr '\n' ' ')"
  fi
else
  miss "the list of Flex Consumption regions ($(az_error))" "check the subscription, then run this again"
fi

# 4. The resource group and its region.
group_exists=false
group_report=$(AZURE_SUBSCRIPTION_ID="$sub" bash "$here/resource-group.sh" 2>&1)
case $? in
  0) group_exists=true; ok "resource group $RESOURCE_GROUP is in $region" ;;
  3) miss "resource group $RESOURCE_GROUP does not exist" \
       "az group create --name $RESOURCE_GROUP --location $region --subscription $sub (needs Contributor on the subscription), or ask an administrator to create it in $region and give you Owner on it" ;;
  4) group_exists=true
     miss "$(printf '%s' "$group_report" | sed 's/##vso\[[^]]*\]//')" \
       "everything is deployed in the group's region: set LOCATION and the entry location to it, or use a group in $region" ;;
  *) miss "resource group $RESOURCE_GROUP could not be read: $(printf '%s' "$group_report" | sed 's/##vso\[[^]]*\]//' | tr '\n' ' ')" \
       "check the subscription, and that you have a role on the group" ;;
esac

# 5. Your rights on the group.
if [ "$group_exists" = true ]; then
  if [ "$user_type" = user ]; then
    assignee=$(az ad signed-in-user show --query id --output tsv 2>"$errors") || assignee="$user"
  else
    assignee="$user"
  fi
  if roles=$(az role assignment list --assignee "$assignee" --scope "$group_id" \
      --include-inherited --include-groups --query "[].roleDefinitionName" --output tsv 2>"$errors"); then
    have=$(printf '%s' "$roles" | sort -u | tr '\n' ',' | sed 's/,$//; s/,/, /g')
    can_deploy=false
    can_assign=false
    if has_role "$roles" Owner Contributor; then can_deploy=true; fi
    if has_role "$roles" Owner "User Access Administrator" "Role Based Access Control Administrator"; then
      can_assign=true
    fi
    if [ "$deploy_path" = pipeline ]; then
      # You give the service connection its roles; the pipeline deploys.
      if [ "$can_assign" = true ]; then
        ok "you may assign roles on the group (${have:-none})"
      else
        miss "the right to assign roles on $RESOURCE_GROUP (you have: ${have:-none})" \
          "ask an Owner for Role Based Access Control Administrator on the group, or to run the az role assignment create of section 4.1 for you"
      fi
    elif [ "$can_deploy" = true ] && [ "$can_assign" = true ]; then
      ok "you may deploy to the group and assign roles in it (${have:-none})"
    else
      miss "Owner on $RESOURCE_GROUP, or Contributor and Role Based Access Control Administrator (you have: ${have:-none})" \
        "ask an Owner of the group or subscription: the templates create resources and assign roles"
    fi
  else
    miss "your role assignments on $RESOURCE_GROUP could not be read ($(az_error))" \
      "check the subscription; ask an Owner which roles you hold on the group"
  fi
fi

# 6. The F&O tenant and the app registration F&O knows.
if [ "$auth_mode" = managedIdentity ]; then
  note "managed identity: after phase 1, register the printed identityClientId in F&O (section 2.2)"
elif [ -z "${D365_TENANT_ID:-}" ]; then
  miss "D365_TENANT_ID: the tenant of the F&O environment" \
    "the tenant F&O users sign in to: Microsoft Entra admin center > Overview > Tenant ID, as an F&O user"
elif [ "$D365_TENANT_ID" != "$tenant" ]; then
  note "the F&O tenant ($D365_TENANT_ID) is not this subscription's ($tenant): allowed. The app registration is in the F&O tenant: run section 2.1 and this script after az login --tenant $D365_TENANT_ID --allow-no-subscriptions; d365TenantId is $D365_TENANT_ID"
else
  ok "the F&O tenant is this subscription's ($tenant)"
  if [ -z "${D365_CLIENT_ID:-}" ]; then
    miss "D365_CLIENT_ID: the app registration F&O knows" \
      "in F&O, System administration > Setup > Microsoft Entra applications: its Client ID (section 2.1)"
  elif name=$(az ad sp show --id "$D365_CLIENT_ID" --query displayName --output tsv 2>"$errors"); then
    ok "app registration $name ($D365_CLIENT_ID) has a service principal in the tenant"
    if ends=$(az ad app credential list --id "$D365_CLIENT_ID" --query "[].endDateTime" \
        --output tsv 2>"$errors"); then
      if [ -z "$ends" ]; then
        note "the registration has no client secret yet: add one with --append (section 2.1)"
      else
        note "its client secrets end on: $(printf '%s' "$ends" | sort | tr '\n' ' ')(add one with --append, never without)"
      fi
    fi
  else
    miss "no service principal for $D365_CLIENT_ID in tenant $tenant ($(az_error))" \
      "section 2.1: reuse the registration F&O already knows (its Client ID under Microsoft Entra applications), then az ad sp create --id $D365_CLIENT_ID if it has none"
  fi
fi

# 7. Sign-in with Entra ID: the app registration holding the app roles (docs/auth.md).
signin_sp=""
if [ "${HTTP_AUTH:-key}" = entra ]; then
  if [ -n "${SIGNIN_TENANT_ID:-}" ] && [ "$SIGNIN_TENANT_ID" != "$tenant" ] \
      && [ "$deploy_path" = pipeline ]; then
    # Single-tenant registrations both: the connection's identity gets no token for the app.
    miss "the sign-in registration in this subscription's tenant $tenant, not in $SIGNIN_TENANT_ID: the pipeline's smoke test gets its token as the service connection, whose identity exists in $tenant only" \
      "run signin-app.sh signed in to tenant $tenant and leave signinTenantId empty (docs/auth.md, section 1)"
  elif [ -n "${SIGNIN_TENANT_ID:-}" ] && [ "$SIGNIN_TENANT_ID" != "$tenant" ]; then
    note "the sign-in registration is in tenant $SIGNIN_TENANT_ID: run this after az login --tenant $SIGNIN_TENANT_ID --allow-no-subscriptions to check it"
  elif [ -z "${SIGNIN_CLIENT_ID:-}" ]; then
    # signin-app.sh creates it after phase 1 (its redirect URI is on the function app's host).
    if [ "$user_type" = user ] && directory_roles=$(az rest --method get \
        --url "https://graph.microsoft.com/v1.0/me/memberOf?\$select=displayName" \
        --query "value[].displayName" --output tsv 2>"$errors"); then
      if has_role "$directory_roles" "Application Developer" "Application Administrator" \
          "Cloud Application Administrator" "Global Administrator"; then
        ok "you may create the sign-in app registration (signin-app.sh, after phase 1)"
      else
        note "signin-app.sh (after phase 1) creates an app registration: you hold no Entra role for that, so it works only while the tenant lets users register applications (the default); otherwise ask for Application Developer, or for an administrator to run it"
      fi
    else
      note "after phase 1, signin-app.sh creates the sign-in app registration: it needs the right to create app registrations (Application Developer, or users allowed to register applications)"
    fi
  elif app_roles=$(az ad app show --id "$SIGNIN_CLIENT_ID" --query "appRoles[].value" \
      --output tsv 2>"$errors"); then
    if has_role "$app_roles" Integration.Reader && has_role "$app_roles" Integration.Operator; then
      ok "sign-in registration $SIGNIN_CLIENT_ID holds Integration.Reader and Integration.Operator"
    else
      miss "the app roles Integration.Reader and Integration.Operator on $SIGNIN_CLIENT_ID" \
        "run scripts/deploy/signin-app.sh again (docs/auth.md, section 1)"
    fi
    if [ "$user_type" = user ] && me=$(az ad signed-in-user show --query id --output tsv 2>"$errors") \
        && owners=$(az ad app owner list --id "$SIGNIN_CLIENT_ID" --query "[].id" --output tsv 2>"$errors") \
        && ! printf '%s\n' "$owners" | grep -qxF "$me"; then
      note "you do not own registration $SIGNIN_CLIENT_ID: running signin-app.sh again (a new host name, the roles) needs an owner or an Application Administrator (az ad app owner add --id $SIGNIN_CLIENT_ID --owner-object-id $me, by an owner)"
    fi
    if sp=$(az ad sp show --id "$SIGNIN_CLIENT_ID" --query "[id, appRoleAssignmentRequired]" \
        --output tsv 2>"$errors"); then
      read -r signin_sp assignment_required <<<"$(printf '%s' "$sp" | tr '\n' ' ')"
      # az's tsv writes a boolean as Python does: True. A case pattern, as macOS's
      # bash 3.2 has no lower-casing expansion.
      case "$assignment_required" in
        [Tt]rue) ;;
        *)
          miss "assignment required on $SIGNIN_CLIENT_ID's service principal (without it anyone in the tenant gets a token for the app)" \
            "run scripts/deploy/signin-app.sh again (needs the service principal's owner or an Application Administrator)" ;;
      esac
    else
      miss "no service principal for sign-in registration $SIGNIN_CLIENT_ID ($(az_error))" \
        "run scripts/deploy/signin-app.sh again (docs/auth.md, section 1)"
    fi
  else
    miss "sign-in registration $SIGNIN_CLIENT_ID in tenant $tenant ($(az_error))" \
      "docs/auth.md, section 1: signin-app.sh prints SIGNIN_CLIENT_ID; a registration in another tenant needs signinTenantId (and SIGNIN_TENANT_ID here)"
  fi
fi

# 8. Azure DevOps: the service connection and the variable group.
if [ "$deploy_path" = pipeline ]; then
  if [ -z "${DEVOPS_ORG:-}" ] || [ -z "${DEVOPS_PROJECT:-}" ]; then
    note "set DEVOPS_ORG and DEVOPS_PROJECT to check the service connection and the variable group"
  else
    devops=(--organization "$DEVOPS_ORG" --project "$DEVOPS_PROJECT")
    connection="sc-d365-integration-$environment"
    if app_id=$(az devops service-endpoint list "${devops[@]}" \
        --query "[?name=='$connection'].authorization.parameters.serviceprincipalid | [0]" \
        --output tsv 2>"$errors"); then
      if [ -z "$app_id" ]; then
        miss "service connection $connection" \
          "section 4.1 (App registration automatic needs the right to create app registrations in Entra; otherwise App registration manual, or a managed identity)"
      elif [ "$group_exists" = true ]; then
        roles=$(az role assignment list --assignee "$app_id" --scope "$group_id" \
          --include-inherited --query "[].roleDefinitionName" --output tsv 2>"$errors")
        if has_role "$roles" Owner Contributor \
            && has_role "$roles" Owner "User Access Administrator" "Role Based Access Control Administrator"; then
          ok "service connection $connection may deploy to $RESOURCE_GROUP and assign roles"
        else
          miss "Contributor and Role Based Access Control Administrator on $RESOURCE_GROUP for $connection (it has: $(printf '%s' "$roles" | tr '\n' ' '))" \
            "section 4.1: az role assignment create --assignee $app_id --role \"Role Based Access Control Administrator\" --scope $group_id"
        fi
        if [ -n "$signin_sp" ]; then
          # The smoke test reads /api/health with the connection's own token for the app.
          role_ids=$(python3 -c 'import json, sys; print("\n".join(r["id"] for r in json.load(open(sys.argv[1]))))' \
            "$here/signin-app-roles.json")
          if held=$(az rest --method get \
              --url "https://graph.microsoft.com/v1.0/servicePrincipals(appId='$app_id')/appRoleAssignments" \
              --query "value[?resourceId=='$signin_sp'].appRoleId" --output tsv 2>"$errors"); then
            # shellcheck disable=SC2086 # one role id a line
            if has_role "$held" $role_ids; then
              ok "service connection $connection holds an app role of the sign-in registration"
            else
              miss "the app role Integration.Reader on $SIGNIN_CLIENT_ID for $connection (the smoke test reads /api/health with its token)" \
                "docs/auth.md, section 2, as for a program: appRoleAssignments of $connection's service principal, resourceId $signin_sp"
            fi
          else
            miss "the app roles of $connection could not be read ($(az_error))" \
              "check that you may read the directory; docs/auth.md, section 2"
          fi
        fi
      else
        ok "service connection $connection exists"
      fi
    elif grep -qi "devops" "$errors"; then
      miss "the azure-devops extension of az, signed in ($(az_error))" \
        "az extension add --name azure-devops; az devops login (or az login as a member of the project)"
    else
      miss "the service connections of $DEVOPS_PROJECT could not be read ($(az_error))" \
        "check DEVOPS_ORG and DEVOPS_PROJECT, and that you are a member of the project"
    fi
    group="d365-integration-$environment"
    if groups=$(az pipelines variable-group list "${devops[@]}" --group-name "$group" \
        --output json 2>"$errors"); then
      report=$(printf '%s' "$groups" | python3 "$here/parameters.py" --check-group "$group" \
        --resource-group "$RESOURCE_GROUP" --location "$region")
      while IFS='|' read -r kind what fix; do
        case "$kind" in
          ok) ok "$what" ;;
          note) note "$what" ;;
          missing) miss "$what" "$fix" ;;
        esac
      done <<<"$report"
    else
      miss "the variable groups of $DEVOPS_PROJECT could not be read ($(az_error))" \
        "az extension add --name azure-devops; check DEVOPS_ORG and DEVOPS_PROJECT"
    fi
  fi
fi

if [ "$missing" -gt 0 ]; then
  printf '\n%s missing. Fix them, then run this again.\n' "$missing"
  exit 1
fi
printf '\nNothing missing.\n'

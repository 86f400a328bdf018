// The D365 F&O recurring-integrations function app on Flex Consumption, in one resource group.
//
// Two phases (docs/deploy.md):
//   1. This template: storage, identity, monitoring, Key Vault, the function app and the Event
//      Grid system topic (and, with vnetEnabled, the network). Then deploy the code.
//   2. app/eventsubscription.bicep deployed on its own, from this template's outputs: the
//      BlobCreated subscription. Its webhook needs the host's blobs_extension system key, which
//      exists only once the deployed code runs the blob trigger, and Event Grid validates the
//      webhook when the subscription is created; nothing else is re-PUT meanwhile.
targetScope = 'resourceGroup'

@description('Lower-case letters and digits, 3-10 characters; starts every resource name.')
@minLength(3)
@maxLength(10)
param namePrefix string

@description('Azure region of every resource; it must offer Flex Consumption.')
param location string = resourceGroup().location

@description('Tags for every resource.')
param tags object = {}

@description('Function app name (globally unique: it is the host name).')
param functionAppName string = 'func-${namePrefix}-${uniqueString(resourceGroup().id)}'

@description('Storage account name (3-24 lower-case letters and digits, globally unique).')
@maxLength(24)
param storageAccountName string = take('st${namePrefix}${uniqueString(resourceGroup().id)}', 24)

// A parameter (variable group entry keyVaultName): with purge protection a deleted vault keeps
// its name for the retention period, so a redeploy after deleting the resource group needs a
// new name (or `az keyvault recover`).
@description('Key Vault name (3-24 characters, globally unique). Change it to redeploy while a deleted vault of the old name is retained.')
@maxLength(24)
param keyVaultName string = 'kv-${namePrefix}-${take(uniqueString(resourceGroup().id), 8)}'

@description('Python version of the Flex Consumption runtime.')
@allowed(['3.11', '3.12'])
param pythonVersion string = '3.12'

// Flex Consumption accepts 1 to 1000: "Currently the lowest maximum instance count value is
// 1, and the highest supported maximum instance count value is 1000" (Learn, Event-driven
// scaling, "Limit scale-out", Flex Consumption pivot). Older pages and samples said 40.
@description('Most instances Flex Consumption may scale out to (per function group).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of one instance in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('D365_BASE_URL: the F&O environment, e.g. https://contoso.operations.dynamics.com (no trailing slash).')
param d365BaseUrl string

// No certificate mode here: the app reads a certificate from a file path, and nothing puts a
// file on a Flex instance (docs/deploy.md, "Credentials").
@description('How the app gets its F&O token: secret (client secret in Key Vault) or managedIdentity (the app\'s user-assigned identity, registered in F&O).')
@allowed(['secret', 'managedIdentity'])
param d365AuthMode string = 'secret'

@description('D365_TENANT_ID: Entra tenant of the F&O environment (secret mode).')
param d365TenantId string = ''

@description('D365_CLIENT_ID: application (client) id registered in F&O (secret mode).')
param d365ClientId string = ''

@description('The F&O client secret, written to Key Vault. Empty: keep the secret already in the vault.')
@secure()
param d365ClientSecret string = ''

@description('Expiry of d365ClientSecret, ISO 8601 UTC (e.g. 2027-06-30T00:00:00Z): the Entra credential\'s end date. Required with a secret; Key Vault alerts 30 days before it.')
param d365ClientSecretExpires string = ''

@description('D365_AUTHORITY_HOST: the Entra authority; defaults to the sign-in endpoint of the cloud deployed to.')
param d365AuthorityHost string = environment().authentication.loginEndpoint

@description('D365_ROUTES: the routes as one JSON string (a JSON array), see docs/deploy.md.')
param d365Routes string

@description('POLL_SCHEDULE: NCRONTAB of the status poller (UTC).')
param pollSchedule string = '0 */1 * * * *'

@description('EXPORT_ROUTES: the export routes as one JSON string (a JSON array), see README; [] for none.')
param exportRoutes string = '[]'

@description('PACKAGE_EXPORT_ROUTES: the package export routes (data projects exported on a schedule) as one JSON string (a JSON array), see README; [] for none.')
param packageExportRoutes string = '[]'

@description('EXPORT_SCHEDULE: NCRONTAB of the export timer (UTC).')
param exportSchedule string = '0 */5 * * * *'

@description('MAX_PENDING_AGE: how long a message may stay non-terminal before it is TimedOut.')
param maxPendingAge string = '24h'

@description('ARCHIVE_MODE: move finished files to the archive container, or only stamp their metadata.')
@allowed(['move', 'metadata'])
param archiveMode string = 'move'

@description('POLL_CONCURRENCY: F&O status calls in flight at once per poller tick.')
@minValue(1)
@maxValue(64)
param pollConcurrency int = 16

@description('RETENTION_RECORDS_DAYS: days a final file record stays in the status table after its last change (1-36500, or never).')
param retentionRecordsDays string = '90'

@description('RETENTION_EXPORTS_DAYS: days an acknowledged export record stays in the status table (1-36500, or never).')
param retentionExportsDays string = '90'

@description('RETENTION_AUDIT_DAYS: days an audit row stays in the status table (1-36500, or never).')
param retentionAuditDays string = '365'

@description('Lifecycle rule: days after its last change a blob of the archive container is deleted; 0 keeps it for ever.')
@minValue(0)
param archiveRetentionDays int = 180

@description('Lifecycle rule: days after its last change a blob of the errors container is deleted; 0 keeps it for ever. Longer than RETENTION_RECORDS_DAYS plus MAX_PENDING_AGE: a record kept must find its errors.')
@minValue(0)
param errorsRetentionDays int = 180

@description('Lifecycle rule: days after its last change an exported file (the containers of EXPORT_ROUTES and PACKAGE_EXPORT_ROUTES) is deleted; 0 keeps it for ever.')
@minValue(0)
param exportsRetentionDays int = 90

@description('D365_BUDGET: shared (every instance keeps to one F&O budget, kept in the status table) or off.')
@allowed(['shared', 'off'])
param d365Budget string = 'shared'

// F&O allows 52 calls at once and 6,000 per 5 minutes a user and web server: lower both when
// other integrations use the same F&O user.
@description('D365_MAX_CONCURRENCY: F&O calls in flight at once for the whole app.')
@minValue(1)
@maxValue(1000)
param d365MaxConcurrency int = 32

@description('D365_MAX_REQUESTS_PER_5MIN: F&O calls per 5 minutes for the whole app.')
@minValue(1)
@maxValue(1000000)
param d365MaxRequestsPer5Min int = 4800

@description('E-mail address the telemetry alerts go to (infra/app/alerts.bicep); empty for none.')
param alertEmail string = ''

@description('Webhook the telemetry alerts are posted to (common alert schema); empty for none.')
@secure()
param alertWebhookUrl string = ''

@description('Alert when the oldest file still waiting for F&O is older than this many hours.')
@minValue(1)
param oldestPendingAlertHours int = 6

@description('Private endpoints for storage and Key Vault, VNet integration for the app, public network access off (as Microsoft\'s Flex quickstarts\' VNET_ENABLED).')
param vnetEnabled bool = false

// One value for the container, the INBOUND_CONTAINER app setting (the blob trigger's path is
// %INBOUND_CONTAINER%/{name}) and the Event Grid filter: they cannot drift apart.
@description('INBOUND_CONTAINER: the container files are uploaded to (3-63 lower-case letters, digits and single hyphens).')
@minLength(3)
@maxLength(63)
param inboundContainerName string = 'd365-inbound'

@description('HTTP_AUTH: key (a function key guards the API and the console) or entra (App Service authentication with Entra ID and the app roles Integration.Reader and Integration.Operator; docs/auth.md).')
@allowed(['key', 'entra'])
param httpAuth string = 'key'

@description('With httpAuth entra: the application (client) id of the app registration holding the two app roles (scripts in docs/auth.md).')
param signinClientId string = ''

@description('With httpAuth entra: the Entra tenant of that app registration; empty: the tenant deployed to.')
param signinTenantId string = ''

var archiveContainerName = 'd365-archive'
var errorsContainerName = 'd365-execution-errors'
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'd365-eventgrid-deadletter'
var statusTableName = 'd365messages'
var resourceToken = uniqueString(resourceGroup().id)

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${namePrefix}-${resourceToken}'
  location: location
  tags: tags
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: {
    name: storageAccountName
    location: location
    tags: tags
    containerNames: [
      inboundContainerName
      archiveContainerName
      errorsContainerName
      deploymentContainerName
      deadLetterContainerName
    ]
    statusTableName: statusTableName
    // Archive, errors, and the container of every export and package export route (a route
    // without one is refused by the app, so each names it). union(..., []) drops a container
    // named twice (the README's examples share d365-exports): toObject is given each key once.
    lifecycleDays: union(
      toObject(
        union(map(concat(json(exportRoutes), json(packageExportRoutes)), route => route.container), []),
        container => container,
        container => exportsRetentionDays
      ),
      {
        '${archiveContainerName}': archiveRetentionDays
        '${errorsContainerName}': errorsRetentionDays
      }
    )
    vnetEnabled: vnetEnabled
  }
}

module network 'app/network.bicep' = if (vnetEnabled) {
  name: 'network'
  params: {
    name: 'vnet-${namePrefix}-${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${namePrefix}-${resourceToken}'
    applicationInsightsName: 'appi-${namePrefix}-${resourceToken}'
    location: location
    tags: tags
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: keyVaultName
    location: location
    tags: tags
    d365ClientSecret: d365ClientSecret
    d365ClientSecretExpires: d365ClientSecretExpires
    vnetEnabled: vnetEnabled
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: identity.properties.principalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  // The roles must exist before the host starts: it reads storage and the Key Vault
  // reference with this identity at startup.
  dependsOn: [rbac]
  params: {
    name: functionAppName
    planName: 'plan-${namePrefix}-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultUri: keyVault.outputs.uri
    clientSecretName: keyVault.outputs.clientSecretName
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    d365BaseUrl: d365BaseUrl
    d365AuthMode: d365AuthMode
    d365TenantId: d365TenantId
    d365ClientId: d365ClientId
    d365AuthorityHost: d365AuthorityHost
    d365Routes: d365Routes
    inboundContainerName: inboundContainerName
    archiveContainerName: archiveContainerName
    errorsContainerName: errorsContainerName
    statusTableName: statusTableName
    pollSchedule: pollSchedule
    exportRoutes: exportRoutes
    packageExportRoutes: packageExportRoutes
    exportSchedule: exportSchedule
    maxPendingAge: maxPendingAge
    archiveMode: archiveMode
    pollConcurrency: pollConcurrency
    httpAuth: httpAuth
    retentionRecordsDays: retentionRecordsDays
    retentionExportsDays: retentionExportsDays
    retentionAuditDays: retentionAuditDays
    d365Budget: d365Budget
    d365MaxConcurrency: d365MaxConcurrency
    d365MaxRequestsPer5Min: d365MaxRequestsPer5Min
    appSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''
  }
}

// In both modes: with key, the module turns App Service authentication off, so that an app
// switched back from entra answers its key callers (docs/auth.md, "Back to key").
module signin 'app/signin.bicep' = {
  name: 'signin'
  params: {
    siteName: functionApp.outputs.name
    enabled: httpAuth == 'entra'
    // azd checks no entry (the pipeline's parameters.py does): name what is missing rather than
    // turn authentication on for an empty client id, which refuses every caller. Guarded by
    // the mode: with key the module is deployed too, and an empty client id is the rule.
    clientId: httpAuth == 'entra' && empty(signinClientId) ? fail('httpAuth is entra but signinClientId is empty: set it to the client id signin-app.sh printed (azd: SIGNIN_CLIENT_ID; docs/auth.md, section 1).') : signinClientId
    // Empty (as azd passes an unset value): the registration is in the tenant deployed to.
    tenantId: empty(signinTenantId) ? tenant().tenantId : signinTenantId
    loginEndpoint: environment().authentication.loginEndpoint
  }
}

module eventGrid 'app/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    systemTopicName: 'evgt-${namePrefix}-${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    deadLetterContainerName: deadLetterContainerName
  }
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  params: {
    namePrefix: namePrefix
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    alertEmail: alertEmail
    alertWebhookUrl: alertWebhookUrl
    oldestPendingHours: oldestPendingAlertHours
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  params: {
    namePrefix: namePrefix
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.defaultHostName
output storageAccountName string = storage.outputs.name
output keyVaultName string = keyVault.outputs.name
output systemTopicName string = eventGrid.outputs.systemTopicName
// Phase 2 (app/eventsubscription.bicep) takes these two with the names above.
output inboundContainerName string = inboundContainerName
output deadLetterContainerName string = deadLetterContainerName
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId

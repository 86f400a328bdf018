// The D365 F&O recurring-integrations function app on Flex Consumption, in one resource group.
//
// Two phases (docs/deploy.md):
//   1. deployEventSubscription=false: storage, identity, monitoring, Key Vault, the function app
//      and the Event Grid system topic. Then deploy the code.
//   2. deployEventSubscription=true: adds the BlobCreated subscription. Its webhook needs the
//      host's blobs_extension system key, which exists only once the deployed code runs the
//      blob trigger, and Event Grid validates the webhook when the subscription is created.
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

@description('Key Vault name (3-24 characters, globally unique).')
@maxLength(24)
param keyVaultName string = 'kv-${namePrefix}-${take(uniqueString(resourceGroup().id), 8)}'

@description('Python version of the Flex Consumption runtime.')
@allowed(['3.11', '3.12'])
param pythonVersion string = '3.12'

@description('Most instances Flex Consumption may scale out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of one instance in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('D365_BASE_URL: the F&O environment, e.g. https://contoso.operations.dynamics.com (no trailing slash).')
param d365BaseUrl string

@description('How the app gets its F&O token: secret (client secret in Key Vault), certificate, or managedIdentity (the app\'s user-assigned identity, registered in F&O).')
@allowed(['secret', 'certificate', 'managedIdentity'])
param d365AuthMode string = 'secret'

@description('D365_TENANT_ID: Entra tenant of the F&O environment (secret and certificate modes).')
param d365TenantId string = ''

@description('D365_CLIENT_ID: application (client) id registered in F&O (secret and certificate modes).')
param d365ClientId string = ''

@description('The F&O client secret, written to Key Vault. Empty: keep the secret already in the vault.')
@secure()
param d365ClientSecret string = ''

@description('D365_CLIENT_CERTIFICATE_PATH: PEM/PFX path on the instance (certificate mode).')
param d365CertificatePath string = ''

@description('Whether the certificate has a password, kept in Key Vault (certificate mode).')
param d365CertificateHasPassword bool = false

@description('The certificate password, written to Key Vault. Empty: keep the one already in the vault.')
@secure()
param d365CertificatePassword string = ''

@description('D365_AUTHORITY_HOST: the Entra authority (sovereign clouds differ).')
param d365AuthorityHost string = 'https://login.microsoftonline.com'

@description('D365_ROUTES: the routes as one JSON string (a JSON array), see docs/deploy.md.')
param d365Routes string

@description('POLL_SCHEDULE: NCRONTAB of the status poller (UTC).')
param pollSchedule string = '0 */1 * * * *'

@description('MAX_PENDING_AGE: how long a message may stay non-terminal before it is TimedOut.')
param maxPendingAge string = '24h'

@description('ARCHIVE_MODE: move finished files to the archive container, or only stamp their metadata.')
@allowed(['move', 'metadata'])
param archiveMode string = 'move'

@description('POLL_CONCURRENCY: F&O status calls in flight at once per poller tick.')
@minValue(1)
@maxValue(64)
param pollConcurrency int = 16

@description('Phase 2 only: create the Event Grid subscription (after the code is deployed).')
param deployEventSubscription bool = false

// One value for the container, the INBOUND_CONTAINER app setting (the blob trigger's path is
// %INBOUND_CONTAINER%/{name}) and the Event Grid filter: they cannot drift apart.
@description('INBOUND_CONTAINER: the container files are uploaded to (3-63 lower-case letters, digits and single hyphens).')
@minLength(3)
@maxLength(63)
param inboundContainerName string = 'd365-inbound'

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
    d365CertificatePassword: d365CertificatePassword
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
    certificatePasswordName: keyVault.outputs.certificatePasswordName
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    d365BaseUrl: d365BaseUrl
    d365AuthMode: d365AuthMode
    d365TenantId: d365TenantId
    d365ClientId: d365ClientId
    d365CertificatePath: d365CertificatePath
    d365CertificateHasPassword: d365CertificateHasPassword
    d365AuthorityHost: d365AuthorityHost
    d365Routes: d365Routes
    inboundContainerName: inboundContainerName
    archiveContainerName: archiveContainerName
    errorsContainerName: errorsContainerName
    statusTableName: statusTableName
    pollSchedule: pollSchedule
    maxPendingAge: maxPendingAge
    archiveMode: archiveMode
    pollConcurrency: pollConcurrency
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

// A module, not a conditional resource, so that phase 1 never evaluates the listKeys() call
// inside it (the blobs_extension key does not exist before the code runs).
module blobCreatedSubscription 'app/eventsubscription.bicep' = if (deployEventSubscription) {
  name: 'eventsubscription'
  params: {
    systemTopicName: eventGrid.outputs.systemTopicName
    functionAppName: functionApp.outputs.name
    storageAccountName: storage.outputs.name
    inboundContainerName: inboundContainerName
    deadLetterContainerName: deadLetterContainerName
  }
}

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.defaultHostName
output storageAccountName string = storage.outputs.name
output keyVaultName string = keyVault.outputs.name
output systemTopicName string = eventGrid.outputs.systemTopicName
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId

// The Flex Consumption plan and the function app with every setting of the settings contract
// (shared/config/). Storage is reached with the user-assigned identity only.

@description('Function app name.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Resource id of the app\'s user-assigned identity.')
param identityId string

@description('Client id of the app\'s user-assigned identity.')
param identityClientId string

@description('The storage account of the app.')
param storageAccountName string

@description('Blob container Flex Consumption deploys the package to.')
param deploymentContainerName string

@description('The Application Insights component.')
param applicationInsightsName string

@description('Key Vault URI, with its trailing slash.')
param keyVaultUri string

@description('Name of the client secret in the vault.')
param clientSecretName string

@description('Python version of the runtime.')
param pythonVersion string

@description('Most instances the app scales out to.')
param maximumInstanceCount int

@description('Memory of one instance in MB.')
param instanceMemoryMB int

@description('D365_BASE_URL.')
param d365BaseUrl string

@description('secret or managedIdentity.')
param d365AuthMode string

@description('D365_TENANT_ID.')
param d365TenantId string

@description('D365_CLIENT_ID.')
param d365ClientId string

@description('D365_AUTHORITY_HOST.')
param d365AuthorityHost string

@description('D365_ROUTES (a JSON array as a string).')
param d365Routes string

@description('INBOUND_CONTAINER (the blob trigger\'s container).')
param inboundContainerName string

@description('ARCHIVE_CONTAINER.')
param archiveContainerName string

@description('ERRORS_CONTAINER.')
param errorsContainerName string

@description('STATUS_TABLE.')
param statusTableName string

@description('POLL_SCHEDULE.')
param pollSchedule string

@description('EXPORT_ROUTES (a JSON array as a string; [] for no exports).')
param exportRoutes string = '[]'

@description('PACKAGE_EXPORT_ROUTES (a JSON array as a string; [] for no package exports).')
param packageExportRoutes string = '[]'

@description('EXPORT_SCHEDULE.')
param exportSchedule string = '0 */5 * * * *'

@description('MAX_PENDING_AGE.')
param maxPendingAge string

@description('ARCHIVE_MODE.')
param archiveMode string

@description('POLL_CONCURRENCY.')
param pollConcurrency int

@description('HTTP_AUTH: key or entra.')
param httpAuth string = 'key'

@description('RETENTION_RECORDS_DAYS (days, or never).')
param retentionRecordsDays string

@description('RETENTION_EXPORTS_DAYS (days, or never).')
param retentionExportsDays string

@description('RETENTION_AUDIT_DAYS (days, or never).')
param retentionAuditDays string

@description('D365_BUDGET: shared or off.')
param d365Budget string

@description('D365_MAX_CONCURRENCY.')
param d365MaxConcurrency int

@description('D365_MAX_REQUESTS_PER_5MIN.')
param d365MaxRequestsPer5Min int

@description('Subnet of the VNet integration (vnetEnabled), or empty for none.')
param appSubnetId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Identity-based connections: no connection string, no key. AzureWebJobsStorage is the host's
// own storage (receipts, timer locks, keys); IntegrationStorage serves the blob trigger (blob
// and queue URIs are both required for it) and the app's own blob and table clients.
var storageSettings = {
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  IntegrationStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  IntegrationStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  IntegrationStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  IntegrationStorage__credential: 'managedidentity'
  IntegrationStorage__clientId: identityClientId
}

var monitoringSettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  // Why: the component has local auth off; telemetry is sent with the identity's token.
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Why: the worker configures the Azure Monitor distro itself (Python, OpenTelemetry mode).
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  // Why: the F&O client records its own dependency spans; the generic ones would be duplicates.
  OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: 'requests,urllib,urllib3'
}

// Versionless Key Vault references: a new secret version is picked up without a redeploy.
var clientSecretReference = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${clientSecretName}/)'

// Exactly one credential kind is configured: a managed identity is used only when no secret
// is set. (No certificate: the app reads one from a file, and nothing puts it on the instance.)
var secretAuthSettings = {
  D365_TENANT_ID: d365TenantId
  D365_CLIENT_ID: d365ClientId
  D365_CLIENT_SECRET: clientSecretReference
}
var managedIdentityAuthSettings = {
  D365_MANAGED_IDENTITY_CLIENT_ID: identityClientId
}
var authSettings = d365AuthMode == 'secret' ? secretAuthSettings : managedIdentityAuthSettings

// The rest of the contract, at the documented defaults unless a parameter sets them.
var integrationSettings = {
  D365_BASE_URL: d365BaseUrl
  D365_AUTHORITY_HOST: d365AuthorityHost
  D365_ROUTES: d365Routes
  D365_HTTP_TIMEOUT: '300s'
  D365_WRITE_TIMEOUT: '300s'
  // Why empty: in Azure, F&O's SAS URLs are on its cloud's blob endpoints, which need no entry.
  D365_SAS_HOSTS: ''
  INBOUND_CONTAINER: inboundContainerName
  ARCHIVE_CONTAINER: archiveContainerName
  ERRORS_CONTAINER: errorsContainerName
  STATUS_TABLE: statusTableName
  ARCHIVE_MODE: archiveMode
  POLL_SCHEDULE: pollSchedule
  POLL_CONCURRENCY: string(pollConcurrency)
  POLL_TICK_BUDGET: '4m'
  POLL_INTERVAL_MIN: '30s'
  POLL_INTERVAL_MAX: '10m'
  MAX_PENDING_AGE: maxPendingAge
  CLAIM_LEASE: '10m'
  ORDER_SETTLE: '60s'
  MAX_FILE_BYTES: '48MiB'
  // The export timer binds %EXPORT_SCHEDULE%, so the setting exists even with no exports.
  EXPORT_ROUTES: exportRoutes
  EXPORT_SCHEDULE: exportSchedule
  EXPORT_MAX_ATTEMPTS: '10'
  // Run by the export timer too: a slot runs at the first tick of EXPORT_SCHEDULE after it.
  PACKAGE_EXPORT_ROUTES: packageExportRoutes
  // Retention of the status table's rows (the containers' own: storage.bicep's lifecycle rules).
  RETENTION_RECORDS_DAYS: retentionRecordsDays
  RETENTION_EXPORTS_DAYS: retentionExportsDays
  RETENTION_AUDIT_DAYS: retentionAuditDays
  RETENTION_SCHEDULE: '0 30 2 * * *'
  RETENTION_BUDGET: '5m'
  // One F&O budget for every instance (F&O allows 52 at once and 6,000 per 5 minutes a user).
  D365_BUDGET: d365Budget
  D365_MAX_CONCURRENCY: string(d365MaxConcurrency)
  D365_MAX_REQUESTS_PER_5MIN: string(d365MaxRequestsPer5Min)
  // Limits of every zip the app reads (templates, uploaded packages, unzipped exports).
  ZIP_MAX_MEMBERS: '10000'
  ZIP_MAX_MEMBER_BYTES: '4GiB'
  ZIP_MAX_TOTAL_BYTES: '8GiB'
  ZIP_MAX_RATIO: '200'
  ZIP_MAX_MANIFEST_BYTES: '4MiB'
  // Who may call the HTTP API; with entra, app/signin.bicep turns App Service authentication on.
  HTTP_AUTH: httpAuth
}

var appSettings = union(storageSettings, monitoringSettings, authSettings, integrationSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    // Linux.
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd deploys the code of service `app` (azure.yaml) to the site with this tag.
  tags: union(tags, { 'azd-service-name': 'app' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    // Why: the status API returns business data and takes a key; never over plain HTTP.
    httpsOnly: true
    // Why: Key Vault references resolve with the user-assigned identity, the only one the app has.
    keyVaultReferenceIdentity: identityId
    // VNet integration (vnetEnabled): storage and Key Vault through their private endpoints.
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    siteConfig: {
      // Why: TLS 1.0/1.1 are deprecated.
      minTlsVersion: '1.2'
      // No FUNCTIONS_WORKER_RUNTIME: Flex takes the runtime from functionAppConfig.
      appSettings: [
        for setting in items(appSettings): {
          name: setting.key
          value: setting.value
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          // Why: the package container is read with the identity, not a key or SAS.
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName

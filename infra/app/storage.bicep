// The one storage account of the app: host storage (AzureWebJobsStorage), the integration
// containers and the status table (IntegrationStorage), and the Flex deployment container.

@description('Storage account name (3-24 lower-case letters and digits).')
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Blob containers to create.')
param containerNames array

@description('The status table (STATUS_TABLE).')
param statusTableName string

@description('Lifecycle rules: container name -> days after its last change a blob is deleted (0: kept for ever).')
param lifecycleDays object

@description('Private endpoints only (app/network.bicep): public network access off.')
param vnetEnabled bool

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  // GPv2: required for Event Grid blob events and for queues and tables.
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    // Why: account keys are long-lived shared secrets; the host, the trigger, the app and
    // Event Grid all authenticate with Entra identities instead.
    allowSharedKeyAccess: false
    // Why: with keys off, the portal and the CLI must use Entra too.
    defaultToOAuthAuthentication: true
    // Why: integration files hold business data; nothing is ever read anonymously.
    allowBlobPublicAccess: false
    // Why: TLS 1.0/1.1 are deprecated.
    minimumTlsVersion: 'TLS1_2'
    // Why: no clear-text HTTP to the data plane.
    supportsHttpsTrafficOnly: true
    // Why: object replication must not copy business data to another tenant.
    allowCrossTenantReplication: false
    // Why: without vnetEnabled the app reaches storage over its public endpoint (access by
    // Entra identity and role only); with it, through private endpoints, and trusted Azure
    // services (Event Grid's dead-lettering) pass the firewall by the bypass.
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // Why: a deleted or overwritten file (inbound or archive) can be restored for a week.
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    // Why: a container deleted by mistake can be restored for a week.
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      // Why: private containers; only role holders read or write.
      publicAccess: 'None'
    }
  }
]

// Containers with a day count: one lifecycle rule each (0 keeps a container's blobs for ever).
var lifecycleRules = filter(items(lifecycleDays), rule => rule.value > 0)

// The containers' retention (the status table's rows have the app's retention timer). Why
// modification time: a blob of these containers is written once and never read to keep it.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (!empty(lifecycleRules)) {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        for rule in lifecycleRules: {
          name: 'delete-${rule.key}'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              // Block blobs only: the app writes no other kind.
              blobTypes: ['blockBlob']
              prefixMatch: ['${rule.key}/']
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: rule.value
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource statusTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: statusTableName
}

output name string = storage.name


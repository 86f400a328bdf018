// The Key Vault holding the F&O client secret. The app reads it
// through a Key Vault reference with its user-assigned identity (Key Vault Secrets User).

@description('Key Vault name.')
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('The F&O client secret to store. Empty: leave the vault\'s current secret as it is.')
@secure()
param d365ClientSecret string

@description('Private endpoint only (app/network.bicep): public network access off.')
param vnetEnabled bool

var clientSecretName = 'd365-client-secret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Why: access is granted by Azure roles (the app holds Key Vault Secrets User only),
    // auditable with every other role assignment; no access policies to drift.
    enableRbacAuthorization: true
    // Why: a deleted secret can be recovered during the retention period.
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // Why: nobody, an owner included, can purge a deleted secret or vault before the
    // retention period ends.
    enablePurgeProtection: true
    // Why: without vnetEnabled the platform resolves the Key Vault reference over the public
    // endpoint, with the app's identity and role; with it, through the private endpoint.
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
  }
}

// Written only when a value is given, so a deployment without the secret keeps the secret
// already in the vault (rotated by hand or by another process).
resource clientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(d365ClientSecret)) {
  parent: vault
  name: clientSecretName
  properties: {
    value: d365ClientSecret
    contentType: 'text/plain'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output clientSecretName string = clientSecretName

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

@description('Expiry of the client secret (ISO 8601 UTC, e.g. 2027-06-30T00:00:00Z): the credential\'s own end date in Entra. Required with a secret.')
param d365ClientSecretExpires string

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
// already in the vault (rotated by hand or by another process). scripts/deploy/deploy-infra.sh
// gives it only while the vault has none: the first deployment (docs/deploy.md, "Rotating").
// Always with its expiry: Key Vault raises SecretNearExpiry 30 days before `exp`, which
// alerts.bicep turns into an alert; a secret without one would never warn.
resource clientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(d365ClientSecret)) {
  parent: vault
  name: clientSecretName
  properties: {
    value: d365ClientSecret
    contentType: 'text/plain'
    attributes: {
      // Seconds since 1970-01-01T00:00:00Z (Key Vault's SecretAttributes.exp). Guarded by the
      // resource's own condition too: ARM may evaluate a skipped resource's properties.
      exp: empty(d365ClientSecret) ? 0 : empty(d365ClientSecretExpires) ? fail('d365ClientSecretExpires is empty: a client secret is written to Key Vault only with its expiry date. Set the variable group entry d365ClientSecretExpires (azd: D365_CLIENT_SECRET_EXPIRES) to the end date of the Entra credential, e.g. 2027-06-30T00:00:00Z.') : dateTimeToEpoch(d365ClientSecretExpires)
    }
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output clientSecretName string = clientSecretName

// The right of the Event Grid system topic's identity to write undeliverable events to the
// dead-letter container, least privilege: that container only, not the account.
//
// A module of its own so that the assignment's name can come from the identity's principal id:
// a resource name must be known when a deployment starts, and the topic's principal id is known
// only once the topic exists; a module parameter is known when the module starts. Named from the
// principal (not the topic's resource id): a recreated topic gets a new identity, and an existing
// assignment cannot change its principal (RoleAssignmentUpdateNotPermitted).

@description('The storage account holding the dead-letter container.')
param storageAccountName string

@description('Container that keeps events Event Grid could not deliver.')
param deadLetterContainerName string

@description('Principal (object) id of the system topic\'s managed identity.')
param principalId string

// Built-in role definition id (the same in every tenant).
var roleDefinitionIds = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, principalId, roleDefinitionIds.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionIds.storageBlobDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The Event Grid system topic of the storage account (phase 1) and the right of its identity
// to write undeliverable events to the dead-letter container (deadletter-writer.bicep).

@description('System topic name.')
param systemTopicName string

@description('Azure region (the storage account\'s).')
param location string

@description('Tags for every resource.')
param tags object

@description('The storage account whose blob events the topic publishes.')
param storageAccountName string

@description('Container that keeps events Event Grid could not deliver.')
param deadLetterContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: location
  tags: tags
  // Why: dead-lettering authenticates with this identity, since the account takes no keys.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

module deadLetterWriter 'deadletter-writer.bicep' = {
  name: 'deadletter-writer'
  params: {
    storageAccountName: storageAccountName
    deadLetterContainerName: deadLetterContainerName
    principalId: systemTopic.identity.principalId
  }
}

output systemTopicName string = systemTopic.name

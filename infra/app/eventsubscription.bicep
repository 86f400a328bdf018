// Phase 2: the BlobCreated subscription that drives the enqueue_blob trigger. Deploy it only
// after the code: the webhook needs the host's blobs_extension system key, and Event Grid
// validates the webhook when the subscription is created.

@description('The storage account\'s system topic.')
param systemTopicName string

@description('The function app.')
param functionAppName string

@description('The storage account (dead-letter destination).')
param storageAccountName string

@description('The container the blob trigger watches (INBOUND_CONTAINER).')
param inboundContainerName string

@description('Container that keeps events Event Grid could not deliver.')
param deadLetterContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource siteHost 'Microsoft.Web/sites/host@2024-04-01' existing = {
  parent: site
  name: 'default'
}

// The key stays inside this resource: never an output (outputs are kept in the deployment
// history in clear text).
resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: 'enqueue-blob'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${site.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.enqueue_blob&code=${siteHost.listKeys().systemKeys.blobs_extension}'
        // One file per delivery: each event is one enqueue to F&O.
        maxEventsPerBatch: 1
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      // Only the inbound container: archive and error writes must not trigger an enqueue.
      subjectBeginsWith: '/blobServices/default/containers/${inboundContainerName}/'
    }
    // Why: a cold or restarting app misses a delivery now and then; Event Grid retries with
    // back-off for up to a day, then dead-letters instead of dropping the event.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

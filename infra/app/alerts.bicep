// Alerts on the app's telemetry (shared/telemetry.py), sent to one action group.
//
// The log queries read what the code emits: log records with customDimensions.event
// ("file_finished", "poll_tick") and the correlation ids, F&O calls as dependencies with
// customDimensions["d365.operation"], and the d365ri.* metrics in customMetrics.
// tests/telemetry/test_alerts.py checks these names against the code.

@description('Prefix of every alert name.')
param namePrefix string

@description('Azure region of the query alerts.')
param location string

@description('Tags for every resource.')
param tags object

@description('Application Insights the app sends its telemetry to.')
param applicationInsightsName string

@description('Storage account of AzureWebJobsStorage (holds the blob trigger\'s poison queue).')
param storageAccountName string

@description('Key Vault holding the F&O client secret (its SecretNearExpiry events are alerted).')
param keyVaultName string

@description('E-mail address the alerts go to; empty for none.')
param alertEmail string = ''

@description('Webhook the alerts are posted to (common alert schema); empty for none.')
@secure()
param alertWebhookUrl string = ''

@description('Alert when the oldest file still waiting for F&O is older than this many hours.')
@minValue(1)
param oldestPendingHours int = 6

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${namePrefix}-d365'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take('d365${namePrefix}', 12)
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
    webhookReceivers: empty(alertWebhookUrl) ? [] : [
      {
        name: 'webhook'
        serviceUri: alertWebhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

var failedStates = '"ProcessedWithErrors", "PreProcessingError", "PostProcessingFailed", "EnqueueFailed", "TimedOut", "ImportFailed", "ImportCanceled"'

// One entry per log alert: name, severity, what to do, the query, the window, and whether the
// rule fires on rows found (GreaterThan 0) or on none found (LessThan 1).
var logAlerts = [
  {
    key: 'file-failed'
    displayName: 'D365: a file ended in a failure state'
    description: 'A file ended ProcessedWithErrors, PreProcessingError, PostProcessingFailed, EnqueueFailed, TimedOut, ImportFailed or ImportCanceled (the package API). Open GET /api/messages?blob=<blob> for the reason and F&O\'s row errors, fix the data or the job, and upload the file again. line_blocked, when set, says that the file stops its ordered line (route "order") and which: resubmit the file or release the line (POST /api/messages/<id>/release); the files behind it wait until then.'
    severity: 2
    query: 'traces | where tostring(customDimensions.event) == "file_finished" | extend state = tostring(customDimensions.state) | where state in (${failedStates}) | project timestamp, state, blob = tostring(customDimensions.blob), route = tostring(customDimensions.route), message_id = tostring(customDimensions.message_id), line_blocked = tostring(customDimensions.line_blocked)'
    window: 'PT15M'
    frequency: 'PT5M'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    key: 'line-late'
    displayName: 'D365: a file of an ordered line was sent out of order'
    description: 'An older file of an ordered route (route "order") arrived after a newer file of its line had been sent (its Event Grid event came later than ORDER_SETTLE). It was sent next, so F&O received it after late_after. Check in F&O whether the job needs the two processed again in order; raise ORDER_SETTLE if the uploader\'s events come late.'
    severity: 3
    query: 'traces | where tostring(customDimensions.event) == "line_late" | project timestamp, blob = tostring(customDimensions.blob), line = tostring(customDimensions.line), late_after = tostring(customDimensions.late_after)'
    window: 'PT15M'
    frequency: 'PT5M'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    key: 'export-failed'
    displayName: 'D365: an export could not be written or acknowledged'
    description: 'A recurring export job\'s message could not be downloaded, written to its container or acknowledged, or the export route\'s dequeue failed. The message is retried when F&O offers it again (30 minutes after its dequeue). cause says whose failure it was: message (F&O\'s download, the package, the target name; these count toward EXPORT_MAX_ATTEMPTS), storage (our own storage: retried without limit, never given up) or ack; gave_up true marks a message given up for good (those tries spent, or a package the zip limits refuse): it stays ExportFailed and is acknowledged, and its reason says what was kept and where. Open GET /api/messages?direction=export&route=<route> for the reason; check the export job in F&O (Data management > Recurring data jobs), its authorization policy, and the target container. kind package marks a scheduled package export (PACKAGE_EXPORT_ROUTES): gave_up true there is its final failure (F&O\'s status and the execution\'s errors, a refused ExportToPackage, or no final state within MAX_PENDING_AGE); otherwise its package could not be written and is tried again at the next export tick. message_id is then its execution id; check the data project in F&O (Data management > Export) and its job history.'
    severity: 2
    query: 'traces | where tostring(customDimensions.event) == "export_failed" | project timestamp, kind = tostring(customDimensions.kind), route = tostring(customDimensions.route), message_id = tostring(customDimensions.message_id), gave_up = tobool(customDimensions.gave_up), cause = tostring(customDimensions.cause), reason = tostring(customDimensions.reason)'
    window: 'PT15M'
    frequency: 'PT5M'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    key: 'oldest-pending'
    displayName: 'D365: a file has waited too long for F&O'
    description: 'The oldest file not yet final has waited more than ${oldestPendingHours} h. Check the recurring job and batch processing in F&O (Data management > Recurring data jobs), and that the poller runs.'
    severity: 2
    query: 'customMetrics | where name == "d365ri.pending.oldest_age" | where value > ${oldestPendingHours * 3600}'
    window: 'PT15M'
    frequency: 'PT15M'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    key: 'poll-silent'
    displayName: 'D365: no poll tick for 10 minutes'
    description: 'The poll_status timer has not run for 10 minutes, so no file is followed to its outcome. Check that the function app is running, POLL_SCHEDULE, and the host\'s errors in Application Insights.'
    severity: 1
    query: 'customMetrics | where name == "d365ri.poll.tick.duration"'
    window: 'PT10M'
    frequency: 'PT5M'
    operator: 'LessThan'
    threshold: 1
  }
  {
    key: 'd365-unauthorized'
    displayName: 'D365: F&O refuses the app (401/403)'
    description: 'F&O answered 401 or 403: the client secret or certificate is wrong or expired, the app registration is missing from F&O (System administration > Microsoft Entra applications), or its user lacks the role. Files are retried until MAX_PENDING_AGE.'
    severity: 1
    query: 'dependencies | where isnotempty(tostring(customDimensions["d365.operation"])) | where resultCode in ("401", "403")'
    window: 'PT15M'
    frequency: 'PT5M'
    operator: 'GreaterThan'
    threshold: 0
  }
]

resource queryAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for alert in logAlerts: {
    name: 'alert-${namePrefix}-${alert.key}'
    location: location
    tags: tags
    properties: {
      displayName: alert.displayName
      description: alert.description
      severity: alert.severity
      enabled: true
      scopes: [appInsights.id]
      evaluationFrequency: alert.frequency
      windowSize: alert.window
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: 'Count'
            operator: alert.operator
            threshold: alert.threshold
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: [actionGroup.id]
      }
    }
  }
]

// The blob trigger moves a blob that failed poisonBlobThreshold times (host.json) to the
// webjobs-blobtrigger-poison queue; no other queue of this account holds messages.
resource poisonQueueAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-${namePrefix}-poison-queue'
  location: 'global'
  tags: tags
  properties: {
    description: 'A message is in the webjobs-blobtrigger-poison queue: the blob trigger failed 5 times on a blob. Read the message (the blob name), look for the invocation\'s exception in Application Insights, fix the cause, then delete the message and upload the file again.'
    severity: 2
    enabled: true
    scopes: ['${storage.id}/queueServices/default']
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          name: 'QueueMessages'
          criterionType: 'StaticThresholdCriterion'
          metricNamespace: 'Microsoft.Storage/storageAccounts/queueServices'
          metricName: 'QueueMessageCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Average'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

// Key Vault raises SecretNearExpiry 30 days before a secret's expiry date (set one on the
// F&O client secret, docs/deploy.md); Event Grid turns it into an alert of the action group.
// An event subscription on the vault itself: Event Grid creates the vault's system topic.
resource secretExpiry 'Microsoft.EventGrid/eventSubscriptions@2025-02-15' = {
  name: 'secret-near-expiry'
  scope: vault
  properties: {
    destination: {
      endpointType: 'MonitorAlert'
      properties: {
        severity: 'Sev2'
        description: 'A Key Vault secret (the F&O client secret) expires within 30 days, or has expired. Create a new client secret in the Entra app registration, write it to the vault with an expiry date, and remove the old one.'
        actionGroups: [actionGroup.id]
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
      ]
    }
    // The Azure Monitor alert destination takes CloudEvents only.
    eventDeliverySchema: 'CloudEventSchemaV1_0'
  }
}

output actionGroupId string = actionGroup.id

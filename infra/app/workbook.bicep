// An Azure Monitor workbook on the app's telemetry (shared/telemetry.py): outcomes over time by
// route, the slowest files, the files with F&O row errors, F&O call latency and throttling.
//
// The queries read what the code emits, as the alerts do (alerts.bicep): log records with
// customDimensions.event ("file_finished") and the correlation ids, F&O calls as dependencies
// with customDimensions["d365.operation"], the d365ri.* metrics in customMetrics (counters and
// histograms arrive as deltas per export, so sum(value) is a total). Dependencies and traces
// may be sampled: counts of them use itemCount. tests/telemetry/test_alerts.py checks the
// names against the code.

@description('Starts the workbook\'s display name.')
param namePrefix string

@description('Azure region of the workbook.')
param location string

@description('Tags for every resource.')
param tags object

@description('Application Insights the app sends its telemetry to (the workbook\'s data source).')
param applicationInsightsName string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Every chart and table follows this time range; {TimeRange:grain} is its bin size.
var timeRange = {
  type: 9
  name: 'parameters'
  content: {
    version: 'KqlParameterItem/1.0'
    parameters: [
      {
        id: 'd365ri-time-range'
        version: 'KqlParameterItem/1.0'
        name: 'TimeRange'
        label: 'Time range'
        type: 4
        isRequired: true
        value: {
          durationMs: 86400000
        }
        typeSettings: {
          selectableValues: [
            { durationMs: 3600000 }
            { durationMs: 14400000 }
            { durationMs: 86400000 }
            { durationMs: 259200000 }
            { durationMs: 604800000 }
            { durationMs: 2592000000 }
          ]
          allowCustom: true
        }
      }
    ]
  }
}

// One entry per query panel: its item name, title, chart or table, and the KQL.
var panels = [
  {
    key: 'outcomes'
    title: 'Files by outcome and route'
    visualization: 'timechart'
    query: '''
customMetrics
| where name == "d365ri.files"
| extend route = tostring(customDimensions.route), state = tostring(customDimensions.state)
| extend outcome = strcat(iff(isempty(route), "(no route)", route), " / ", state)
| summarize files = sum(value) by bin(timestamp, {TimeRange:grain}), outcome
| order by timestamp asc
'''
  }
  {
    key: 'slowest-files'
    title: 'Slowest files: first log line to final state, within the time range'
    visualization: 'table'
    query: '''
let endings = traces
    | where tostring(customDimensions.event) == "file_finished"
    | extend record_id = tostring(customDimensions.record_id)
    | where isnotempty(record_id)
    | summarize arg_max(timestamp, *) by record_id
    | project record_id, finished = timestamp, blob = tostring(customDimensions.blob),
        route = tostring(customDimensions.route), state = tostring(customDimensions.state),
        message_id = tostring(customDimensions.message_id);
traces
| extend record_id = tostring(customDimensions.record_id)
| where record_id in (endings | project record_id)
| summarize started = min(timestamp) by record_id
| join kind=inner endings on record_id
| extend minutes = round((finished - started) / 1m, 1)
| top 25 by minutes desc
| project blob, route, state, minutes, started, finished, message_id, record_id
'''
  }
  {
    key: 'row-errors'
    title: 'Top F&O row-error messages (each file: GET /api/messages?blob=<blob>)'
    visualization: 'table'
    query: '''
traces
| where tostring(customDimensions.event) == "file_finished"
| where toint(customDimensions.error_count) > 0
| mv-expand message = todynamic(tostring(customDimensions.row_errors)) to typeof(string)
| where isnotempty(message)
| summarize files = dcount(tostring(customDimensions.record_id)), last_seen = max(timestamp)
    by message, route = tostring(customDimensions.route)
| top 20 by files desc
'''
  }
  {
    key: 'd365-latency'
    title: 'F&O call latency, 95th percentile (ms) by operation'
    visualization: 'timechart'
    query: '''
dependencies
| extend operation = tostring(customDimensions["d365.operation"])
| where isnotempty(operation)
| summarize p95_ms = percentile(duration, 95) by bin(timestamp, {TimeRange:grain}), operation
| order by timestamp asc
'''
  }
  {
    key: 'd365-throttling'
    title: 'F&O throttling: 429 answers and retries'
    visualization: 'timechart'
    query: '''
customMetrics
| where name in ("d365ri.d365.calls", "d365ri.d365.retries")
| extend status_code = tostring(customDimensions.status_code)
| summarize throttled = sumif(value, name == "d365ri.d365.calls" and status_code == "429"),
    retries = sumif(value, name == "d365ri.d365.retries")
    by bin(timestamp, {TimeRange:grain})
| order by timestamp asc
'''
  }
  {
    key: 'd365-calls'
    title: 'F&O calls by operation'
    visualization: 'table'
    query: '''
dependencies
| extend operation = tostring(customDimensions["d365.operation"])
| where isnotempty(operation)
| summarize calls = sum(itemCount),
    p50_ms = percentile(duration, 50),
    p95_ms = percentile(duration, 95),
    max_ms = max(duration),
    throttled = sumif(itemCount, resultCode == "429"),
    failed = sumif(itemCount, success == false)
    by operation
| order by p95_ms desc
'''
  }
]

var header = {
  type: 1
  name: 'header'
  content: {
    json: '## D365 F&O recurring integrations\nFiles sent to F&O and their outcomes, and the calls made to F&O. One file\'s whole story: the query in the README, "Telemetry".'
  }
}

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat(
    [header, timeRange],
    map(panels, panel => {
      type: 3
      name: panel.key
      content: {
        version: 'KqlItem/1.0'
        title: panel.title
        query: panel.query
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: panel.visualization
        timeContextFromParameter: 'TimeRange'
      }
    })
  )
  isLocked: false
  fallbackResourceIds: [appInsights.id]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name is a GUID; derived from the scope so a redeploy updates the same one.
  name: guid(resourceGroup().id, applicationInsightsName, 'd365ri-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'D365 recurring integrations (${namePrefix})'
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: appInsights.id
    serializedData: string(workbookContent)
  }
}

output workbookId string = workbook.id

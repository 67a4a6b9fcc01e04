// Log Analytics and Application Insights. Application Insights takes telemetry only from Entra-authenticated
// senders (disableLocalAuth), so its connection string alone cannot write to it.

param location string
param tags object
param logAnalyticsName string
param applicationInsightsName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

@description('Days Log Analytics keeps the app\'s logs.')
param retentionInDays int = 30

// Monitoring Metrics Publisher: the one role that lets the app send telemetry to an Entra-only
// Application Insights resource; it reads nothing.
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource publishTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output workspaceId string = workspace.id
output applicationInsightsName string = appInsights.name
// Not a secret: it names the resource; sending needs an Entra token for the app's identity as well.
output connectionString string = appInsights.properties.ConnectionString

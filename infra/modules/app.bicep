// The Flex Consumption plan and the function app: Linux, Python 3.13, the user-assigned identity for
// everything (host storage, package, Key Vault references, telemetry, destinations and store).

param location string
param tags object
param planName string
param appName string

@description('Resource id of the app\'s user-assigned identity.')
param identityId string

@description('Client id of the same identity (which of the app\'s identities to use).')
param identityClientId string

param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string

param applicationInsightsConnectionString string
param logAnalyticsWorkspaceId string

@description('Settings of the export and the store, added to the host\'s own (main.bicep builds them).')
param exportSettings object

@description('Subnet for outbound traffic, or empty for none.')
param subnetId string

@allowed([512, 2048, 4096])
param instanceMemoryMB int

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

var hostSettings = {
  // Identity-based host storage: no connection string, no key. The host, the Durable extension and the
  // app's built-in store all read these.
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
  // Telemetry signed with the identity's Entra token (Application Insights refuses anything else).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:zone redundancy for Flex Consumption exists only in some regions; a lost instance costs a retried batch, and orchestrations resume from the task hub
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:the export API is called by its clients (the CLI) over the internet, each call with a function key; a private-only app is a change for the operator (docs/DEPLOY.md)
  // checkov:skip=CKV_AZURE_17:clients authenticate with function keys (x-functions-key); the API has no client-certificate scheme
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales out on demand; always-ready instances would cost money while idle, and a lost instance costs a retried batch
  // checkov:skip=CKV_AZURE_213:App Service health checks are not offered on Flex Consumption; the platform replaces unhealthy instances
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'export' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertMode: 'Optional'
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(union(exportSettings, hostSettings)): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// Basic-auth publishing (FTP and SCM with a password) off: deployment goes through the identity.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

// The platform's own function logs into Log Analytics too, beside what Application Insights receives.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'function-logs'
  scope: app
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
  }
}

output name string = app.name
output url string = 'https://${app.properties.defaultHostName}'

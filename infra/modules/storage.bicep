// The host's storage account: the Durable Functions task hub (queues, tables, blobs), the package the
// Flex plan runs from, and the built-in DICOM store's default container. Reached only with Entra
// tokens: shared keys are off, so no connection string with a key exists to leak.

param location string
param tags object
param name string

@description('Blob container the Flex Consumption plan deploys the app package into.')
param deploymentContainerName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

@description('With a virtual network the account answers only on its private endpoints.')
param privateOnly bool

// The host needs data access to the three services of its own account, and nothing else:
// - Blob Data Contributor: task hub leases and large messages, the app package, the built-in store
//   (STOW writes, export reads). Owner would add ACL management, which nothing here uses.
// - Queue Data Contributor: the Durable control and work-item queues.
// - Table Data Contributor: the Durable history and instance tables.
var hostRoles = {
  blob: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  queue: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  table: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Deny is set when vnetEnabled; without a virtual network a Flex app reaches its storage from shared outbound addresses, so Deny would lock the host out (keys are off either way)
  // checkov:skip=CKV_AZURE_206:ZRS replicates across zones; geo-replication would not make a task hub recoverable elsewhere (its queues, tables and blobs fail over separately and inconsistently)
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: privateOnly ? 'Disabled' : 'Enabled'
    networkAcls: {
      // Without a virtual network a Flex app reaches its storage from shared outbound addresses,
      // so the account must accept public traffic; with one, only the private endpoints answer.
      defaultAction: privateOnly ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true }
        file: { enabled: true }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource hostAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in items(hostRoles): {
  name: guid(account.id, principalId, role.value)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table

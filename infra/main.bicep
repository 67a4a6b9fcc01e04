// The DICOM export service in one resource group: `azd up`, or `az deployment group create` on this file.
// Every resource is written here from its resource type (no registry modules), so it parses offline.
// Access is by identity only: one user-assigned identity, shared keys off, keys in Key Vault.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; with the resource group it makes the resource names unique.')
param environmentName string

@description('Region of every resource; it must offer Flex Consumption.')
param location string = resourceGroup().location

@description('Put the app in a virtual network, with storage and Key Vault reachable only through private endpoints (the way to an on-premises PACS over VPN or ExpressRoute).')
param vnetEnabled bool = false

@description('Memory of each instance. 2048 MB holds the default 10 parallel batches of 100 files streamed in 4 MiB blocks many times over; 4096 for de-identifying very large instances.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Most instances the plan scales out to; each runs up to 10 copy activities (host.json).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Storage account resource ids the app may export into, comma-separated (any resource group of this subscription). Each gets Storage Blob Data Contributor.')
param destinationAccountIds string = ''

@description('Resource id of an Azure Health Data Services DICOM service to export from (…/workspaces/<w>/dicomservices/<s>); the app gets DICOM Data Reader on it. Empty: the built-in blob store.')
param dicomServiceId string = ''

@description('DICOMweb URL of that DICOM service; by default the service\'s v2 URL.')
param dicomServiceUrl string = empty(dicomServiceId) ? '' : 'https://${split(dicomServiceId, '/')[8]}-${split(dicomServiceId, '/')[10]}.dicom.azurehealthcareapis.com/v2'

@description('Resource id of a storage account holding the built-in store (container "dicomweb"), when not the host\'s own account; the app gets Storage Blob Data Reader on it, enough to export (not to STOW into it).')
param storeAccountId string = ''

@description('True once the keys exist in Key Vault (azd sets it after the first provision), so a redeployment keeps them.')
param keysExist bool = false

@secure()
@description('Randomness for Export__SecretKey; leave the default (three fresh GUIDs per deployment).')
// checkov:skip=CKV_AZURE_131:the default is fresh randomness (newGuid), not a fixed value; it exists only in this deployment
param exportKeySeed string = '${newGuid()}${newGuid()}${newGuid()}'

@secure()
@description('Randomness for Export__Deidentification__Key; leave the default.')
// checkov:skip=CKV_AZURE_131:the default is fresh randomness (newGuid), not a fixed value; it exists only in this deployment
param deidentificationKeySeed string = '${newGuid()}${newGuid()}${newGuid()}'

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName }
var deploymentContainerName = 'app-package'
var destinations = empty(trim(destinationAccountIds)) ? [] : split(replace(destinationAccountIds, ' ', ''), ',')
var dicomService = empty(dicomServiceId) ? [] : [split(dicomServiceId, '/')]
var storeAccount = empty(storeAccountId) ? [] : [split(storeAccountId, '/')]

// Built-in roles granted on accounts outside this template (see modules/blob-role.bicep):
// - Storage Blob Data Contributor on destinations: create, overwrite and append the export's blobs;
//   no ACL or account management. (Export needs to write; read is for the existence check and manifest.)
// - Storage Blob Data Reader on a separate store: read and list instances; nothing more.
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-export-${resourceToken}'
  location: location
  tags: tags
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    name: 'st${resourceToken}'
    deploymentContainerName: deploymentContainerName
    principalId: identity.properties.principalId
    privateOnly: vnetEnabled
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    principalId: identity.properties.principalId
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    name: 'kv-${resourceToken}'
    principalId: identity.properties.principalId
    privateOnly: vnetEnabled
    createKeys: !keysExist
    exportKeySeed: exportKeySeed
    deidentificationKeySeed: deidentificationKeySeed
  }
}

module network 'modules/network.bicep' = if (vnetEnabled) {
  name: 'network'
  params: {
    location: location
    tags: tags
    name: 'vnet-${resourceToken}'
    storageAccountId: storage.outputs.id
    keyVaultId: vault.outputs.id
  }
}

var storeSettings = !empty(dicomServiceUrl) ? {
  DicomStore__Type: 'dicomweb'
  DicomStore__DicomWebUrl: dicomServiceUrl
  DicomStore__Authentication: 'managedIdentity'
} : !empty(storeAccountId) ? {
  DicomStore__ServiceUri: 'https://${last(split(storeAccountId, '/'))}.blob.${environment().suffixes.storage}/'
} : {}

module app 'modules/app.bicep' = {
  name: 'app'
  params: {
    location: location
    tags: tags
    planName: 'plan-${resourceToken}'
    appName: 'func-export-${resourceToken}'
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
    subnetId: vnetEnabled ? network.outputs.appSubnetId : ''
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    exportSettings: union({
      DicomServer__Features__EnableExtendedExport: 'true'
      // References only: the values stay in Key Vault, read with the identity (Key Vault Secrets User).
      Export__SecretKey: vault.outputs.exportSecretKeyReference
      Export__Deidentification__Key: vault.outputs.deidentificationKeyReference
      // The identity that managed-identity destinations and stores use.
      ManagedIdentity__ClientId: identity.properties.clientId
    }, storeSettings)
  }
}

module destinationAccess 'modules/blob-role.bicep' = [for (id, i) in destinations: {
  name: 'destination-${i}'
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    accountName: last(split(id, '/'))
    principalId: identity.properties.principalId
    roleDefinitionId: storageBlobDataContributor
  }
}]

module storeAccess 'modules/blob-role.bicep' = [for parts in storeAccount: {
  name: 'store-account'
  scope: resourceGroup(parts[2], parts[4])
  params: {
    accountName: parts[8]
    principalId: identity.properties.principalId
    roleDefinitionId: storageBlobDataReader
  }
}]

module dicomAccess 'modules/dicom-role.bicep' = [for parts in dicomService: {
  name: 'dicom-service'
  scope: resourceGroup(parts[2], parts[4])
  params: {
    workspaceName: parts[8]
    dicomServiceName: parts[10]
    principalId: identity.properties.principalId
  }
}]

// Outputs become azd environment values. None of them is a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output EXPORT_IDENTITY_CLIENT_ID string = identity.properties.clientId
output EXPORT_IDENTITY_PRINCIPAL_ID string = identity.properties.principalId
output DICOM_EXPORT_URL string = app.outputs.url
output DICOM_EXPORT_CLI string = 'DICOM_EXPORT_URL=${app.outputs.url} DICOM_EXPORT_KEY="$(az functionapp keys list -g ${resourceGroup().name} -n ${app.outputs.name} --query functionKeys.default -o tsv)" dicom-export list'

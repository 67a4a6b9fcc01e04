// Key Vault in RBAC mode with the app's two keys. The app settings hold only references
// (@Microsoft.KeyVault(SecretUri=...)): no key value appears in the app's configuration or any output.

param location string
param tags object
param name string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

@description('With a virtual network the vault answers only on its private endpoint.')
param privateOnly bool

@description('Write the two keys. True on the first deployment; false afterwards, so a redeployment never replaces a key (a new Export__SecretKey strands running exports, a new de-identification key gives every patient new pseudonyms).')
param createKeys bool

@secure()
param exportKeySeed string

@secure()
param deidentificationKeySeed string

// Key Vault Secrets User: read secret values, which is what resolving a Key Vault reference does.
// It cannot list, write or delete secrets, nor touch keys and certificates.
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:Deny is set when vnetEnabled; without a virtual network the Functions platform resolves Key Vault references from shared addresses (access is by RBAC either way)
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: privateOnly ? 'Disabled' : 'Enabled'
    networkAcls: {
      // Without a virtual network the Functions platform resolves references over the public endpoint;
      // with one, only the private endpoint answers.
      defaultAction: privateOnly ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// A module of its own, so that checkov (which does not look inside a conditional resource) checks the secrets.
module keys 'keyvault-secrets.bicep' = if (createKeys) {
  name: 'keyvault-secrets'
  params: {
    vaultName: vault.name
    exportKeySeed: exportKeySeed
    deidentificationKeySeed: deidentificationKeySeed
  }
}

resource readSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output id string = vault.id
// Versionless references: the app picks up a new version (a rotation) without a redeployment.
output exportSecretKeyReference string = '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/export-secret-key)'
output deidentificationKeyReference string = '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/export-deidentification-key)'

// One role on one storage account that may live in another resource group (a destination, or a
// separate built-in store). Deployed as a module so main.bicep can scope it to that account's group.

@description('Name of the existing storage account.')
param accountName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

@description('Id of the built-in role definition to grant (a GUID).')
param roleDefinitionId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource grant 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleDefinitionId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// DICOM Data Reader on an existing Azure Health Data Services DICOM service: the export only reads
// (QIDO to expand identifiers, WADO to fetch instances), so it gets no write or delete right there.

@description('Name of the Health Data Services workspace that holds the DICOM service.')
param workspaceName string

@description('Name of the DICOM service inside that workspace.')
param dicomServiceName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

var dicomDataReader = 'e89c7a3c-2f64-4fa1-a847-3e4c9ba4283a'

resource workspace 'Microsoft.HealthcareApis/workspaces@2024-03-31' existing = {
  name: workspaceName
}

resource dicomService 'Microsoft.HealthcareApis/workspaces/dicomservices@2024-03-31' existing = {
  parent: workspace
  name: dicomServiceName
}

resource grant 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dicomService.id, principalId, dicomDataReader)
  scope: dicomService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dicomDataReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

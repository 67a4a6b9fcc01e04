// Optional virtual network: the app's outbound traffic goes through the "app" subnet, and its storage and
// Key Vault answer only on private endpoints in the "private-endpoints" subnet. This network is also where
// an on-premises PACS or DICOMweb server becomes reachable: peer it with a hub that holds the site-to-site
// VPN or ExpressRoute gateway (docs/DEPLOY.md).

param location string
param tags object
param name string

@description('Address space of the network; widen or move it to avoid clashing with the hospital\'s ranges.')
param addressPrefix string = '10.80.0.0/16'
param appSubnetPrefix string = '10.80.1.0/24'
param endpointSubnetPrefix string = '10.80.2.0/24'

param storageAccountId string
param keyVaultId string

// One private endpoint per service the app reaches, each with its private DNS zone so the usual
// host names resolve to private addresses inside the network.
var endpoints = [
  { service: 'blob', target: storageAccountId, zone: 'privatelink.blob.${environment().suffixes.storage}' }
  { service: 'queue', target: storageAccountId, zone: 'privatelink.queue.${environment().suffixes.storage}' }
  { service: 'table', target: storageAccountId, zone: 'privatelink.table.${environment().suffixes.storage}' }
  { service: 'vault', target: keyVaultId, zone: 'privatelink.vaultcore.azure.net' }
]

resource vnet 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [addressPrefix]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          // Flex Consumption integrates through a subnet delegated to Microsoft.App/environments.
          delegations: [
            {
              name: 'flex'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: endpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for e in endpoints: {
  name: e.zone
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (e, i) in endpoints: {
  parent: zones[i]
  name: '${name}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-01-01' = [for e in endpoints: {
  name: '${name}-${e.service}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: '${vnet.id}/subnets/private-endpoints'
    }
    privateLinkServiceConnections: [
      {
        name: e.service
        properties: {
          privateLinkServiceId: e.target
          groupIds: [e.service]
        }
      }
    ]
  }
}]

resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = [for (e, i) in endpoints: {
  parent: privateEndpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: e.service
        properties: {
          privateDnsZoneId: zones[i].id
        }
      }
    ]
  }
}]

output appSubnetId string = '${vnet.id}/subnets/app'
output vnetId string = vnet.id

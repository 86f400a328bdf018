// vnetEnabled: a virtual network with a subnet for the app's VNet integration and one for
// private endpoints; private endpoints and private DNS zones for the storage account's blob,
// queue and table services and for the Key Vault (the shape of Microsoft's Flex quickstarts).

@description('Virtual network name.')
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('The storage account reached through private endpoints.')
param storageAccountName string

@description('The Key Vault reached through a private endpoint.')
param keyVaultName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource network 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: ['10.0.0.0/16']
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: '10.0.1.0/24'
          // Flex Consumption VNet integration takes a subnet delegated to Container Apps environments.
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
          addressPrefix: '10.0.2.0/24'
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

// (group id, DNS zone, resource) of every private endpoint. The zone names are the ones of
// Microsoft's table "Azure Private Endpoint private DNS zone values"
// (https://learn.microsoft.com/azure/private-link/private-endpoint-dns), built from environment()
// so that sovereign clouds get theirs; tests/deploy/test_infra.py checks them against the table.
// Key Vault's zone is privatelink.vaultcore.<suffix>, not privatelink.vault.<suffix>: the
// keyvaultDns suffix (.vault.azure.net) names the vault's public host, not its private zone.
var endpoints = [
  {
    groupId: 'blob'
    zone: 'privatelink.blob.${environment().suffixes.storage}'
    target: storage.id
  }
  {
    groupId: 'queue'
    zone: 'privatelink.queue.${environment().suffixes.storage}'
    target: storage.id
  }
  {
    groupId: 'table'
    zone: 'privatelink.table.${environment().suffixes.storage}'
    target: storage.id
  }
  {
    groupId: 'vault'
    zone: replace(environment().suffixes.keyvaultDns, '.vault.', 'privatelink.vaultcore.')
    target: vault.id
  }
]

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for endpoint in endpoints: {
    name: endpoint.zone
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (endpoint, index) in endpoints: {
    parent: zones[index]
    name: 'link-${name}'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: network.id
      }
    }
  }
]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [
  for endpoint in endpoints: {
    name: 'pe-${endpoint.groupId}-${name}'
    location: location
    tags: tags
    properties: {
      subnet: {
        id: network.properties.subnets[1].id
      }
      privateLinkServiceConnections: [
        {
          name: endpoint.groupId
          properties: {
            privateLinkServiceId: endpoint.target
            groupIds: [endpoint.groupId]
          }
        }
      ]
    }
  }
]

resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [
  for (endpoint, index) in endpoints: {
    parent: privateEndpoints[index]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: endpoint.groupId
          properties: {
            privateDnsZoneId: zones[index].id
          }
        }
      ]
    }
  }
]

output appSubnetId string = network.properties.subnets[0].id

// The app's two keys, written once (keyvault.bicep calls this only while they do not exist yet).
// Only Key Vault holds the values: nothing here is an output.

@description('Name of the Key Vault (RBAC mode) that receives the keys.')
param vaultName string

@secure()
@description('Random hex from which Export__SecretKey is made (at least 64 random hex digits after removing GUID dashes and fixed digits).')
param exportKeySeed string

@secure()
@description('Random text used as Export__Deidentification__Key (any text will do: it keys an HMAC).')
param deidentificationKeySeed string

// Export__SecretKey is a Fernet key: 32 random bytes, URL-safe base64. Bicep has no random bytes, so
// the 64 hex digits of three GUIDs (version and variant digits removed: 30 random digits each) are
// re-encoded three hex digits (12 bits) at a time into two base64 digits; the 64th hex digit gives the
// last 4 bits. 256 random bits, 44 characters.
var guidHex = [for i in range(0, 3): replace(substring(toLower(exportKeySeed), i * 36, 36), '-', '')]
var randomParts = [for h in guidHex: '${substring(h, 0, 12)}${substring(h, 13, 3)}${substring(h, 17, 15)}']
var randomHex = join(randomParts, '')
var hexDigits = '0123456789abcdef'
var base64Url = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
var fernetGroups = [for g in range(0, 21): [
  indexOf(hexDigits, substring(randomHex, g * 3, 1))
  indexOf(hexDigits, substring(randomHex, g * 3 + 1, 1))
  indexOf(hexDigits, substring(randomHex, g * 3 + 2, 1))
]]
var fernetPairs = [for d in fernetGroups: '${substring(base64Url, d[0] * 4 + d[1] / 4, 1)}${substring(base64Url, (d[1] % 4) * 16 + d[2], 1)}']
var fernetBody = join(fernetPairs, '')
var exportSecretKey = '${fernetBody}${substring(base64Url, indexOf(hexDigits, substring(randomHex, 63, 1)) * 4, 1)}='

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource exportKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  // checkov:skip=CKV_AZURE_41:the key must outlive every export it protects (and, for pseudonyms, every study that must link up); an expired reference would stop the app, so rotation is a deliberate step (docs/DEPLOY.md)
  name: 'export-secret-key'
  properties: {
    contentType: 'Fernet key (Export__SecretKey); comma-separated keys while rotating'
    value: exportSecretKey
  }
}

resource deidentificationKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  // checkov:skip=CKV_AZURE_41:the key must outlive every export it protects (and, for pseudonyms, every study that must link up); an expired reference would stop the app, so rotation is a deliberate step (docs/DEPLOY.md)
  name: 'export-deidentification-key'
  properties: {
    contentType: 'HMAC key text (Export__Deidentification__Key)'
    value: deidentificationKeySeed
  }
}

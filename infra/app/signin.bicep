// App Service authentication (authsettingsV2), deployed in both HTTP_AUTH modes.
// entra: Entra ID signs people and programs in before a request reaches the app, strips
// callers' own X-MS-CLIENT-PRINCIPAL* headers and sets them for the signed-in caller; the app
// decides by app role (docs/auth.md). key: the feature off.
// Why both modes: a key deployment that skipped this resource left the site's authsettingsV2
// as the last entra deployment set it, so the platform kept answering 401 to every key caller.
// Flex Consumption supports it: the preview's "EasyAuth isn't currently supported" is gone
// from Learn's "Azure Functions Flex Consumption plan hosting", Considerations.

@description('The function app.')
param siteName string

@description('True with httpAuth entra: authentication on, with the registration below. False (key): off.')
param enabled bool

@description('Application (client) id of the app registration that holds the two app roles; read only when enabled.')
param clientId string

@description('Entra tenant of the app registration; read only when enabled.')
param tenantId string

@description('The sign-in endpoint of the cloud, with its trailing slash.')
param loginEndpoint string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

var signedIn = {
  platform: {
    enabled: true
  }
  globalValidation: {
    requireAuthentication: true
    // Why: an API caller gets a 401 to act on, never a redirect to a sign-in page.
    unauthenticatedClientAction: 'Return401'
    // Why: the console's page holds no data and its script starts the sign-in; Event Grid
    // posts to the blob extension's webhook with its system key, not with a token.
    excludedPaths: [
      '/api/console'
      '/runtime/webhooks/blobs'
    ]
  }
  identityProviders: {
    azureActiveDirectory: {
      enabled: true
      registration: {
        clientId: clientId
        openIdIssuer: '${loginEndpoint}${tenantId}/v2.0'
      }
      validation: {
        // Programs get tokens for the application ID URI; people's sign-in for the client id.
        allowedAudiences: [
          'api://${clientId}'
          clientId
        ]
      }
    }
  }
  login: {
    // Why: /.auth/me (the console asks it who is signed in) answers from the token store.
    tokenStore: {
      enabled: true
    }
  }
  httpSettings: {
    requireHttps: true
  }
}

// AuthPlatform.enabled: "true if the Authentication / Authorization feature is enabled for the
// current app; otherwise, false" (Learn, REST API and azure-mgmt-web AuthPlatform);
// `az webapp auth update --enabled false` PUTs this same property. Nothing else: key mode has
// no client id, and a site that never had sign-in is left as it was (the feature off).
var signedOut = {
  platform: {
    enabled: false
  }
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: enabled ? signedIn : signedOut
}

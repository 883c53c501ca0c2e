// OpenID Provider for the gateway's interop tests, built on panva's oidc-provider (an OpenID Certified
// implementation). tests/interop/conftest.py starts it; it can also be run by hand:
//
//   npm ci --prefix tests/op
//   OP_PORT=8081 REDIRECT_URIS=http://127.0.0.1:8080/_auth/callback/op \
//   OP_CLIENT_SECRET_BASIC=... OP_CLIENT_SECRET_POST=... node tests/op/server.js
//
// or as a CIBA-only OP:
//
//   OP_PORT=8082 OP_CIBA=1 OP_CIBA_CLIENT_SECRET=... OP_CIBA_INTERVAL=1 node tests/op/server.js
//
// Configuration (environment variables):
//   OP_HOST                    listen address, loopback only (default 127.0.0.1)
//   OP_PORT                    listen port (required)
//   OP_ISSUER                  issuer URL (default http://OP_HOST:OP_PORT)
//   REDIRECT_URIS              comma-separated redirect URIs registered for every redirect client (required,
//                              except with OP_CIBA=1: without it no redirect client is registered)
//   POST_LOGOUT_REDIRECT_URIS  comma-separated post_logout_redirect_uris for every client (optional)
//   OP_CLIENT_SECRET_BASIC     secret of client gw-basic (client_secret_basic; required with REDIRECT_URIS)
//   OP_CLIENT_SECRET_POST      secret of client gw-post (client_secret_post; required with REDIRECT_URIS)
//   OP_CLIENT_JWKS_FILE        JWKS ({"keys": [...]}) with the public keys of the private_key_jwt clients:
//                              RSA keys belong to gw-pkjwt-rs (RS256), EC P-256 keys to gw-pkjwt-es (ES256).
//                              Without it those two clients are not registered.
//   OP_ACCOUNT_CLAIMS          JSON object replacing the account's claims (default: the ones below)
//   OP_MAX_SECONDS             the process exits by itself after this long (default 1800)
//   OP_CIBA                    1 enables OpenID CIBA Core 1.0 in poll mode with client gw-ciba (see below)
//   OP_CIBA_CLIENT_SECRET      secret of client gw-ciba (client_secret_basic; required with OP_CIBA=1)
//   OP_CIBA_INTERVAL           whole seconds (1-60) sent as "interval" in the backchannel authentication response.
//                              oidc-provider has no such setting and never sends one, so clients fall back to
//                              CIBA's default of 5 s (Core 1.0 section 7.3); this adds it. Unset: none is sent.
//   OP_CIBA_EXPIRES_IN         lifetime of a CIBA request in seconds (default 600, the library's default)
//
// Every client uses the authorization code flow with PKCE (required) and may ask for response_mode query
// or form_post. gw-pkjwt-es also gets its ID tokens signed with ES256; the others get RS256.
// Login: the development interactions of oidc-provider (any login name, any password, then a consent
// form). The login name becomes the subject; every subject has the same claims.
//
// CIBA (OP_CIBA=1): gw-ciba may only use the grant type urn:openid:params:grant-type:ciba, delivery mode poll.
// The login_hint is a national identity number, optionally prefixed "sub:ssn:"; it names the one account,
// the one whose "ssn" claim (OP_ACCOUNT_CLAIMS) it equals, any other hint is unknown_user_id. That account's
// subject is "ciba-" and 16 hex digits of the SHA-256 of its ssn. Any binding_message of 1-200 printable
// characters is accepted (the library's default allows 20 characters of a small set). No device is asked: a
// request stays pending until a test completes it through these control endpoints (loopback only, like the OP):
//   GET  /_test/ciba                          every request so far with its token polls, and counters (JSON)
//   POST /_test/ciba/approve[?auth_req_id=ID] the user approves (default: the newest pending request)
//   POST /_test/ciba/deny[?auth_req_id=ID]    the user declines: the next poll answers access_denied
//
// On start it prints one line "OP READY <issuer>" on stdout.

import { readFileSync } from 'node:fs';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { Provider, errors } from 'oidc-provider';

const fail = (message) => {
  console.error(`tests/op/server.js: ${message}`);
  process.exit(2);
};
const env = (name, dflt) => (process.env[name] !== undefined && process.env[name] !== '' ? process.env[name] : dflt);
const splitList = (value) => value.split(',').map((x) => x.trim()).filter(Boolean);

const host = env('OP_HOST', '127.0.0.1');
if (!(host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host))) {
  fail(`refusing to listen on non-loopback address ${host}`);
}
const port = Number(env('OP_PORT', ''));
if (!Number.isInteger(port) || port < 1 || port > 65535) fail('OP_PORT must be a port number (1-65535)');
const issuer = env('OP_ISSUER', `http://${host.includes(':') ? `[${host}]` : host}:${port}`);
const cibaEnabled = env('OP_CIBA', '') === '1';
if (!['', '0', '1'].includes(env('OP_CIBA', ''))) fail('OP_CIBA must be 1 (CIBA on) or 0 (off)');
const redirectUris = splitList(env('REDIRECT_URIS', ''));
if (redirectUris.length === 0 && !cibaEnabled) {
  fail('REDIRECT_URIS is empty; give the gateway callback URL(s), comma-separated');
}
const postLogoutRedirectUris = splitList(env('POST_LOGOUT_REDIRECT_URIS', ''));
const secretBasic = env('OP_CLIENT_SECRET_BASIC', '');
const secretPost = env('OP_CLIENT_SECRET_POST', '');
if (redirectUris.length && (secretBasic.length < 32 || secretPost.length < 32)) {
  fail('OP_CLIENT_SECRET_BASIC and OP_CLIENT_SECRET_POST must each hold at least 32 characters');
}
const clientJwksFile = env('OP_CLIENT_JWKS_FILE', '');
const maxSeconds = Number(env('OP_MAX_SECONDS', '1800'));
if (!(maxSeconds > 0)) fail('OP_MAX_SECONDS must be a positive number');
const wholeSeconds = (name, min, max) => {
  const value = Number(env(name, ''));
  if (!Number.isInteger(value) || value < min || value > max) fail(`${name} must be a whole number from ${min} to ${max}`);
  return value;
};
const cibaSecret = env('OP_CIBA_CLIENT_SECRET', '');
if (cibaEnabled && cibaSecret.length < 32) fail('OP_CIBA_CLIENT_SECRET must hold at least 32 characters');
const cibaInterval = env('OP_CIBA_INTERVAL', '') ? wholeSeconds('OP_CIBA_INTERVAL', 1, 60) : undefined;
const cibaExpiresIn = env('OP_CIBA_EXPIRES_IN', '') ? wholeSeconds('OP_CIBA_EXPIRES_IN', 1, 3600) : 600;

const DEFAULT_ACCOUNT_CLAIMS = {
  ssn: '196802020575',
  name: 'Åsa Öberg',
  given_name: 'Åsa',
  family_name: 'Öberg',
  country: 'SE',
};
let accountClaims = DEFAULT_ACCOUNT_CLAIMS;
if (env('OP_ACCOUNT_CLAIMS', '')) {
  try {
    accountClaims = JSON.parse(process.env.OP_ACCOUNT_CLAIMS);
  } catch (err) {
    fail(`OP_ACCOUNT_CLAIMS is not valid JSON: ${err.message}`);
  }
  if (accountClaims === null || typeof accountClaims !== 'object' || Array.isArray(accountClaims)) {
    fail('OP_ACCOUNT_CLAIMS must be a JSON object of claim name to value');
  }
  if ('sub' in accountClaims) fail('OP_ACCOUNT_CLAIMS must not set sub; the login name is the subject');
}
if (cibaEnabled && !(typeof accountClaims.ssn === 'string' && /^[0-9]{10,12}$/.test(accountClaims.ssn))) {
  fail('OP_CIBA=1 needs an ssn claim of 10-12 digits in OP_ACCOUNT_CLAIMS: the login_hint names the account by it');
}
// The CIBA account's subject: stable and derived from the ssn, but not the ssn itself.
const cibaSubject = cibaEnabled
  ? `ciba-${createHash('sha256').update(accountClaims.ssn).digest('hex').slice(0, 16)}`
  : undefined;

// Fresh signing keys per start; relying parties fetch them through jwks_uri.
const exportSigningKey = (privateKey, kid, alg) => ({ ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' });
const rsaSigningKey = exportSigningKey(
  generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'op-rs256', 'RS256',
);
const ecSigningKey = exportSigningKey(
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'op-es256', 'ES256',
);

const common = {
  redirect_uris: redirectUris,
  response_types: ['code'],
  response_modes: ['query', 'form_post'],
  grant_types: ['authorization_code'],
  application_type: 'web',
  ...(postLogoutRedirectUris.length ? { post_logout_redirect_uris: postLogoutRedirectUris } : {}),
};

const clients = redirectUris.length ? [
  { ...common, client_id: 'gw-basic', client_secret: secretBasic, token_endpoint_auth_method: 'client_secret_basic' },
  { ...common, client_id: 'gw-post', client_secret: secretPost, token_endpoint_auth_method: 'client_secret_post' },
] : [];

if (clientJwksFile && redirectUris.length) {
  let jwks;
  try {
    jwks = JSON.parse(readFileSync(clientJwksFile, 'utf8'));
  } catch (err) {
    fail(`cannot read OP_CLIENT_JWKS_FILE ${clientJwksFile}: ${err.message}`);
  }
  if (!jwks || !Array.isArray(jwks.keys)) fail('OP_CLIENT_JWKS_FILE must hold a JWKS: {"keys": [...]}');
  if (jwks.keys.some((k) => 'd' in k)) fail('OP_CLIENT_JWKS_FILE holds a private key; give the public keys only');
  const rsaKeys = jwks.keys.filter((k) => k.kty === 'RSA');
  const ecKeys = jwks.keys.filter((k) => k.kty === 'EC' && k.crv === 'P-256');
  if (rsaKeys.length === 0 || ecKeys.length === 0) {
    fail('OP_CLIENT_JWKS_FILE must hold at least one RSA key and one EC P-256 key');
  }
  clients.push(
    {
      ...common,
      client_id: 'gw-pkjwt-rs',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'RS256',
      jwks: { keys: rsaKeys },
    },
    {
      ...common,
      client_id: 'gw-pkjwt-es',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      id_token_signed_response_alg: 'ES256',
      jwks: { keys: ecKeys },
    },
  );
}

const CIBA_GRANT_TYPE = 'urn:openid:params:grant-type:ciba';
if (cibaEnabled) {
  clients.push({
    client_id: 'gw-ciba',
    client_secret: cibaSecret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [CIBA_GRANT_TYPE],
    response_types: [],
    redirect_uris: [],
    application_type: 'web',
    backchannel_token_delivery_mode: 'poll',
  });
}

// What the control endpoints report: every CIBA request (oldest first) with the token polls for it.
const ciba = {
  requests: [],
  // POSTs to the backchannel authentication endpoint, answered or refused.
  backchannel_requests: 0,
  // Token requests with the CIBA grant type, and those naming no request this OP issued.
  token_requests: 0,
  unmatched_token_requests: 0,
};

const cibaFeature = {
  enabled: true,
  deliveryModes: ['poll'],
  async processLoginHint(_ctx, loginHint) {
    const ssn = String(loginHint).replace(/^sub:ssn:/, '');
    return ssn === accountClaims.ssn ? cibaSubject : undefined; // undefined: unknown_user_id
  },
  async processLoginHintToken() {
    return undefined;
  },
  async validateRequestContext() {},
  async verifyUserCode() {},
  async validateBindingMessage(_ctx, bindingMessage) {
    if (bindingMessage !== undefined && !/^[^\u0000-\u001f\u007f-\u009f]{1,200}$/u.test(bindingMessage)) {
      throw new errors.InvalidBindingMessage('binding_message must be 1-200 printable characters');
    }
  },
  async triggerAuthenticationDevice(_ctx, request, account, client) {
    ciba.requests.push({
      auth_req_id: request.jti,
      account_id: account.accountId,
      client_id: client.clientId,
      login_hint: request.params.login_hint,
      binding_message: request.params.binding_message,
      scope: request.scope,
      created: Date.now() / 1000,
      state: 'pending',
      polls: [],
    });
    console.log(`ciba: pending request for ${account.accountId} from ${client.clientId}`);
  },
};

const configuration = {
  clients,
  jwks: { keys: [rsaSigningKey, ecSigningKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // The eID claims ride on the openid scope, the name parts on profile.
  claims: {
    openid: ['sub', 'ssn', 'name', 'country'],
    profile: ['name', 'given_name', 'family_name'],
  },
  // Put the granted scopes' claims into the ID token itself, as the Nordic eID brokers do.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    ...(cibaEnabled ? { ciba: cibaFeature } : {}),
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    IdToken: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    BackchannelAuthenticationRequest(ctx) {
      const requested = Number(ctx?.oidc?.params?.requested_expiry);
      return requested > 0 ? Math.min(cibaExpiresIn, requested) : cibaExpiresIn;
    },
  },
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { ...accountClaims, sub };
      },
    };
  },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
};

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fail(`invalid provider configuration: ${err.message}`);
}

// Log what the tests need to debug a failed login: every error the provider reports.
for (const event of [
  'authorization.error', 'grant.error', 'userinfo.error', 'end_session.error', 'server_error',
  'backchannel_authentication.error',
]) {
  provider.on(event, (_ctx, err) => {
    // authorization_pending is the normal answer to a CIBA poll, not worth a line each time.
    if (err.error === 'authorization_pending') return;
    console.error(`op ${event}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`);
  });
}

// Test-only control endpoints standing in for the user's authentication device.
async function cibaControl(ctx) {
  ctx.type = 'json';
  if (ctx.method === 'GET' && ctx.path === '/_test/ciba') {
    ctx.body = { interval: cibaInterval ?? null, expires_in: cibaExpiresIn, ...ciba };
    return;
  }
  const action = { '/_test/ciba/approve': 'approved', '/_test/ciba/deny': 'denied' }[ctx.path];
  if (ctx.method !== 'POST' || !action) {
    ctx.status = 404;
    ctx.body = { error: 'not_found' };
    return;
  }
  const wanted = ctx.query.auth_req_id;
  const entry = wanted
    ? ciba.requests.find((e) => e.auth_req_id === wanted)
    : [...ciba.requests].reverse().find((e) => e.state === 'pending');
  if (!entry || entry.state !== 'pending') {
    ctx.status = 404;
    ctx.body = { error: 'not_found', error_description: 'no such pending CIBA request' };
    return;
  }
  // find() allows clockTolerance (15 s) past expiry; the token endpoint does not, and neither does the device.
  const request = await provider.BackchannelAuthenticationRequest.find(entry.auth_req_id);
  if (!request || request.isExpired) {
    entry.state = 'expired';
    ctx.status = 404;
    ctx.body = { error: 'not_found', error_description: 'the CIBA request has expired' };
    return;
  }
  if (action === 'approved') {
    const grant = new provider.Grant({ accountId: request.accountId, clientId: request.clientId });
    grant.addOIDCScope(request.scope);
    await grant.save();
    await provider.backchannelResult(request, grant, { authTime: Math.floor(Date.now() / 1000) });
  } else {
    await provider.backchannelResult(request, new errors.AccessDenied('end-user denied the request'));
  }
  entry.state = action;
  console.log(`ciba: request for ${entry.account_id} ${action}`);
  ctx.body = { auth_req_id: entry.auth_req_id, state: action };
}

if (cibaEnabled) {
  provider.use(async (ctx, next) => {
    if (ctx.path === '/_test/ciba' || ctx.path.startsWith('/_test/ciba/')) {
      await cibaControl(ctx);
      return;
    }
    const arrived = Date.now() / 1000;
    await next();
    const route = ctx.oidc?.route;
    if (route === 'backchannel_authentication') {
      ciba.backchannel_requests += 1;
      // CIBA Core 1.0 section 7.3: the minimum wait between polls. oidc-provider never sends it.
      if (ctx.status === 200 && ctx.body?.auth_req_id && cibaInterval !== undefined) {
        ctx.body = { ...ctx.body, interval: cibaInterval };
      }
    } else if (route === 'token' && ctx.oidc.params?.grant_type === CIBA_GRANT_TYPE) {
      ciba.token_requests += 1;
      const entry = ciba.requests.find((e) => e.auth_req_id === ctx.oidc.params.auth_req_id);
      if (entry) {
        entry.polls.push({ at: arrived, status: ctx.status, error: ctx.body?.error ?? null });
      } else {
        ciba.unmatched_token_requests += 1;
      }
    }
  });
}

const server = provider.listen(port, host, () => {
  console.log(`clients: ${clients.map((c) => `${c.client_id} (${c.token_endpoint_auth_method})`).join(', ')}`);
  console.log(`redirect_uris: ${redirectUris.join(' ')}`);
  if (cibaEnabled) {
    console.log(`ciba: poll mode, client gw-ciba, interval ${cibaInterval ?? 'not sent'}, expires_in ${cibaExpiresIn}`);
  }
  console.log(`OP READY ${issuer}`);
});
server.on('error', (err) => fail(`cannot listen on ${host}:${port}: ${err.message}`));

// Bounded lifetime: exit by ourselves even if nobody stops us.
setTimeout(() => {
  console.log(`OP_MAX_SECONDS=${maxSeconds} reached, exiting`);
  process.exit(0);
}, maxSeconds * 1000).unref();

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}

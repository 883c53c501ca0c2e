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
//   OP_BACKCHANNEL             1 enables OpenID Connect Back-Channel Logout 1.0 for the redirect clients (see below)
//   OP_BACKCHANNEL_URI         backchannel_logout_uri of every redirect client (required with OP_BACKCHANNEL=1;
//                              loopback http(s) URL, e.g. http://127.0.0.1:GWPORT/_auth/backchannel-logout/op)
//   OP_REFRESH                 1: the redirect clients may use (and always get) refresh tokens (see below)
//   OP_REFRESH_ROTATE          1: every refresh_token grant rotates the refresh token (default: the library's
//                              policy, which for these confidential clients means no rotation in a test's time)
//   OP_ACCESS_TOKEN_TTL        access token lifetime in seconds, the token responses' expires_in (default 600)
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
// Back-channel logout (OP_BACKCHANNEL=1): every redirect client registers OP_BACKCHANNEL_URI as its
// backchannel_logout_uri with backchannel_logout_session_required, so its ID tokens carry "sid" and its logout
// tokens carry "sid" and "sub". Signing out at the OP (GET /session/end, then its form with logout=yes) POSTs a
// logout token to that URI before the OP answers the confirmation (oidc-provider awaits the delivery; a refusal
// is only logged and recorded, the user is signed out anyway). oidc-provider refuses outgoing requests to
// special-use addresses (loopback included); for OP_BACKCHANNEL_URI's origin only, that check is lifted.
//
// Refresh tokens (OP_REFRESH=1): the redirect clients get the refresh_token grant type and every token response
// to them carries a refresh token (issueRefreshToken: no offline_access needed, so the token ends with the OP
// session). With OP_REFRESH_ROTATE=1 each refresh answers with a new refresh token and consumes the old one; using
// a consumed one again is invalid_grant and revokes the whole grant (the library's reuse detection).
//
// Test-only control endpoints of OP_BACKCHANNEL=1 and OP_REFRESH=1 (loopback only, like the OP):
//   GET  /_test/counters                         JSON: token requests per grant type, every authorization_code
//                                                grant (logins: account, client, sid, grant), every refresh_token
//                                                grant (status, error, detail, rotated) and every logout token
//                                                delivery (backchannel: account, client, sid, ok, error)
//   POST /_test/revoke-grants?account_id=SUB     (OP_REFRESH=1) destroys every grant the OP issued tokens for to
//                                                SUB, with its refresh and access tokens: the next refresh is
//                                                invalid_grant
//   POST /_test/logout-token?sub=SUB[&sid=SID][&client_id=ID]
//                                                (OP_BACKCHANNEL=1) signs a logout token as the OP would send it,
//                                                without sending it. sid defaults to the one of SUB's newest login,
//                                                client_id to that login's client.
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
const flag = (name) => {
  if (!['', '0', '1'].includes(env(name, ''))) fail(`${name} must be 1 (on) or 0 (off)`);
  return env(name, '') === '1';
};
const backchannelEnabled = flag('OP_BACKCHANNEL');
const refreshEnabled = flag('OP_REFRESH');
const refreshRotate = flag('OP_REFRESH_ROTATE');
const accessTokenTtl = env('OP_ACCESS_TOKEN_TTL', '') ? wholeSeconds('OP_ACCESS_TOKEN_TTL', 1, 86400) : 600;
let backchannelUri;
if (backchannelEnabled) {
  if (redirectUris.length === 0) fail('OP_BACKCHANNEL=1 needs REDIRECT_URIS: back-channel logout is for those clients');
  try {
    backchannelUri = new URL(env('OP_BACKCHANNEL_URI', ''));
  } catch {
    fail('OP_BACKCHANNEL=1 needs OP_BACKCHANNEL_URI, an absolute http(s) URL');
  }
  const bcHost = backchannelUri.hostname.replace(/^\[|\]$/g, '');
  if (!['http:', 'https:'].includes(backchannelUri.protocol) || backchannelUri.hash
    || !(bcHost === 'localhost' || bcHost === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bcHost))) {
    fail('OP_BACKCHANNEL_URI must be a loopback http(s) URL without fragment');
  }
} else if (env('OP_BACKCHANNEL_URI', '')) {
  fail('OP_BACKCHANNEL_URI is set but OP_BACKCHANNEL is not 1');
}
if (refreshRotate && !refreshEnabled) fail('OP_REFRESH_ROTATE=1 needs OP_REFRESH=1');

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
  grant_types: refreshEnabled ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
  application_type: 'web',
  ...(postLogoutRedirectUris.length ? { post_logout_redirect_uris: postLogoutRedirectUris } : {}),
  ...(backchannelEnabled
    ? { backchannel_logout_uri: backchannelUri.href, backchannel_logout_session_required: true }
    : {}),
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
    ...(backchannelEnabled ? { backchannelLogout: { enabled: true } } : {}),
  },
  ...(refreshEnabled ? {
    // Every token response to a client allowed the refresh_token grant carries a refresh token, without the
    // offline_access scope (and its consent prompt); such a refresh token ends with the OP session.
    async issueRefreshToken(_ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    ...(refreshRotate ? { rotateRefreshToken: true } : {}),
  } : {}),
  ...(backchannelEnabled ? {
    // oidc-provider's outgoing requests refuse special-use addresses, loopback included. The logout tokens go to
    // the gateway on loopback: lift that for OP_BACKCHANNEL_URI's origin, and only for it.
    fetch(url, options) {
      if (new URL(url).origin === backchannelUri.origin) {
        const { dispatcher: _ssrfGuard, ...rest } = options;
        return globalThis.fetch(url, rest);
      }
      return globalThis.fetch(url, options);
    },
  } : {}),
  pkce: { required: () => true },
  ttl: {
    AccessToken: accessTokenTtl,
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
  'backchannel_authentication.error', ...(backchannelEnabled ? ['backchannel.error'] : []),
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

// What GET /_test/counters reports (OP_BACKCHANNEL=1 or OP_REFRESH=1).
const counters = {
  access_token_ttl: accessTokenTtl,
  refresh_rotate: refreshRotate,
  // Token endpoint requests per grant_type, answered or refused.
  token_requests: {},
  // Successful authorization_code grants, oldest first: who logged in, and the sid in the ID token.
  logins: [],
  // Every refresh_token grant request, oldest first.
  refresh: [],
  // Every logout token delivery to a backchannel_logout_uri, oldest first.
  backchannel: [],
};

const CONTROL_PATHS = new Set(['/_test/counters', '/_test/revoke-grants', '/_test/logout-token']);

async function sessionControl(ctx) {
  ctx.type = 'json';
  const notFound = (description) => {
    ctx.status = 404;
    ctx.body = { error: 'not_found', ...(description ? { error_description: description } : {}) };
  };
  if (ctx.method === 'GET' && ctx.path === '/_test/counters') {
    ctx.body = counters;
  } else if (ctx.method === 'POST' && ctx.path === '/_test/revoke-grants' && refreshEnabled) {
    const accountId = ctx.query.account_id;
    if (!accountId) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'account_id is required' };
      return;
    }
    const grantIds = [...new Set([...counters.logins, ...counters.refresh]
      .filter((e) => e.account_id === accountId && e.grant_id).map((e) => e.grant_id))];
    for (const grantId of grantIds) {
      await Promise.all([
        provider.AccessToken.revokeByGrantId(grantId),
        provider.RefreshToken.revokeByGrantId(grantId),
        provider.AuthorizationCode.revokeByGrantId(grantId),
        provider.Grant.adapter.destroy(grantId),
      ]);
    }
    console.log(`test: revoked ${grantIds.length} grant(s) of ${accountId}`);
    ctx.body = { account_id: accountId, revoked_grants: grantIds };
  } else if (ctx.method === 'POST' && ctx.path === '/_test/logout-token' && backchannelEnabled) {
    const { sub } = ctx.query;
    if (!sub) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'sub is required' };
      return;
    }
    const login = [...counters.logins].reverse().find((e) => e.account_id === sub);
    const sid = ctx.query.sid ?? login?.sid;
    const clientId = ctx.query.client_id ?? login?.client_id;
    const client = clientId ? await provider.Client.find(clientId) : undefined;
    if (!client || !sid) {
      notFound('no such client, or no login of sub to take sid/client_id from');
      return;
    }
    // As oidc-provider's Client#backchannelLogout builds it.
    const logoutToken = new provider.IdToken({ sub }, { client, ctx: undefined });
    logoutToken.mask = { sub: null };
    logoutToken.set('events', { 'http://schemas.openid.net/event/backchannel-logout': {} });
    logoutToken.set('jti', randomBytes(16).toString('base64url'));
    logoutToken.set('sid', sid);
    ctx.body = { logout_token: await logoutToken.issue({ use: 'logout' }), sub, sid, client_id: client.clientId };
  } else {
    notFound();
  }
}

if (backchannelEnabled || refreshEnabled) {
  provider.on('grant.error', (ctx, err) => {
    ctx.state.testGrantError = err;
  });
  if (backchannelEnabled) {
    const delivered = (ok) => (...args) => {
      const [err, client, accountId, sid] = ok ? [null, ...args.slice(1)] : args.slice(1);
      counters.backchannel.push({
        at: Date.now() / 1000,
        client_id: client.clientId,
        account_id: accountId,
        sid,
        ok,
        error: err ? err.message : null,
      });
      console.log(`backchannel: logout token for ${accountId} to ${client.clientId}: ${ok ? 'ok' : err.message}`);
    };
    provider.on('backchannel.success', delivered(true));
    provider.on('backchannel.error', delivered(false));
  }
  provider.use(async (ctx, next) => {
    if (CONTROL_PATHS.has(ctx.path)) {
      await sessionControl(ctx);
      return;
    }
    const arrived = Date.now() / 1000;
    await next();
    if (ctx.oidc?.route !== 'token') return;
    const grantType = ctx.oidc.params?.grant_type ?? null;
    counters.token_requests[grantType] = (counters.token_requests[grantType] ?? 0) + 1;
    const { entities } = ctx.oidc;
    if (grantType === 'authorization_code' && ctx.status === 200) {
      const code = entities.AuthorizationCode;
      counters.logins.push({
        at: arrived,
        account_id: code?.accountId ?? null,
        client_id: ctx.oidc.client?.clientId ?? null,
        sid: code?.sid ?? null,
        grant_id: code?.grantId ?? null,
        refresh_token_issued: Boolean(ctx.body?.refresh_token),
        expires_in: ctx.body?.expires_in ?? null,
      });
    } else if (grantType === 'refresh_token') {
      const err = ctx.state.testGrantError;
      const token = entities.RotatedRefreshToken ?? entities.RefreshToken;
      counters.refresh.push({
        at: arrived,
        client_id: ctx.oidc.client?.clientId ?? null,
        account_id: token?.accountId ?? null,
        grant_id: token?.grantId ?? null,
        status: ctx.status,
        error: ctx.status === 200 ? null : (ctx.body?.error ?? null),
        error_description: ctx.status === 200 ? null : (ctx.body?.error_description ?? null),
        error_detail: ctx.status === 200 ? null : (err?.error_detail ?? null),
        rotated: ctx.status === 200 && Boolean(entities.RotatedRefreshToken),
        expires_in: ctx.body?.expires_in ?? null,
      });
    }
  });
}

const server = provider.listen(port, host, () => {
  console.log(`clients: ${clients.map((c) => `${c.client_id} (${c.token_endpoint_auth_method})`).join(', ')}`);
  console.log(`redirect_uris: ${redirectUris.join(' ')}`);
  if (cibaEnabled) {
    console.log(`ciba: poll mode, client gw-ciba, interval ${cibaInterval ?? 'not sent'}, expires_in ${cibaExpiresIn}`);
  }
  if (backchannelEnabled) console.log(`backchannel_logout_uri: ${backchannelUri.href}`);
  if (refreshEnabled) {
    console.log(`refresh tokens: on, rotation ${refreshRotate ? 'always' : 'library default'}, access token ttl ${accessTokenTtl}s`);
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

// A real OpenID Connect provider (panva's oidc-provider) for the end-to-end tests.
//
// Environment:
//   OIDC_PORT          port to listen on (127.0.0.1 only); the issuer is http://127.0.0.1:PORT
//   OIDC_USERS_FILE    JSON {"alice": {"password": "...", "email": "...", "groups": [...]}, ...}
//   OIDC_CLIENTS_FILE  JSON [{client_id, client_secret, redirect_uris, grant_types, ...}, ...]
//   OIDC_SIGNING_KEY_FILE  optional: a private RSA JWK with `kid` (else one is generated)
//
// Both files are re-read whenever the provider needs them, so a test changes a user's
// groups (seen on the next token or refresh-token grant) or adds a client by rewriting a file.
// Extra client metadata: `access_token_audience` (the client's access tokens become JWTs with
// that `aud`), `access_token_scope` (space-separated scopes those tokens may carry, beyond the
// OpenID ones) and `access_token_groups` (the `groups` claim of client_credentials tokens).
// `access_token_ttl` (seconds) shortens those tokens' lifetime. Clients registered dynamically
// (RFC 7591, /reg) are kept in memory and get JWT access tokens for the resource they ask for.
// GET /test/stats answers {"jwks_requests": n, "token_requests": n}. Logs go to stderr.
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

const port = Number.parseInt(process.env.OIDC_PORT ?? '', 10);
const usersFile = process.env.OIDC_USERS_FILE;
const clientsFile = process.env.OIDC_CLIENTS_FILE;
if (!Number.isInteger(port) || port <= 0 || !usersFile || !clientsFile) {
  console.error('provider.mjs: set OIDC_PORT, OIDC_USERS_FILE and OIDC_CLIENTS_FILE');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const log = (...args) => console.error('[oidc-provider]', ...args);

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));
const readUsers = () => readJson(usersFile);
const readClients = () => readJson(clientsFile);

const escapeHtml = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function signingKey() {
  if (process.env.OIDC_SIGNING_KEY_FILE) return { alg: 'RS256', use: 'sig', ...readJson(process.env.OIDC_SIGNING_KEY_FILE) };
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

// Clients live in the clients file, looked up on every use; everything else stays in memory.
const memoryAdapter = createMemoryAdapter();
const registeredClients = new Map();
class ClientFileAdapter {
  async find(clientId) {
    return registeredClients.get(clientId) ?? readClients().find((client) => client.client_id === clientId);
  }

  async upsert(clientId, metadata) {
    registeredClients.set(clientId, metadata);
  }

  async destroy() {}
}

async function findAccount(_ctx, sub) {
  const user = readUsers()[sub];
  if (!user || user.disabled) return undefined;
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        preferred_username: sub,
        name: user.name ?? sub,
        email: user.email,
        email_verified: Boolean(user.email),
        groups: user.groups ?? [],
      };
    },
  };
}

async function extraTokenClaims(ctx, token) {
  if (token.kind === 'ClientCredentials') {
    const groups = ctx.oidc.client?.access_token_groups;
    return groups ? { groups } : undefined;
  }
  const user = token.accountId ? readUsers()[token.accountId] : undefined;
  return user ? { groups: user.groups ?? [] } : undefined;
}

const configuration = {
  adapter: (name) => (name === 'Client' ? new ClientFileAdapter() : memoryAdapter(name)),
  jwks: { keys: [signingKey()] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  findAccount,
  extraTokenClaims,
  extraClientMetadata: { properties: ['access_token_audience', 'access_token_scope', 'access_token_groups', 'access_token_ttl'] },
  // groups and preferred_username come with `openid` so any login carries them.
  claims: {
    openid: ['sub', 'groups', 'preferred_username'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  // The ID token carries the user's claims in the code flow too (not only userinfo).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  clientBasedCORS: () => true,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, client, oneOf) => oneOf ?? client?.access_token_audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource, client) => {
        if (registeredClients.has(client.clientId) && /^https?:\/\//.test(resource)) {
          return { audience: resource, scope: '', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        }
        if (!client.access_token_audience || resource !== client.access_token_audience) {
          throw new errors.InvalidTarget(`resource not allowed for this client: ${resource}`);
        }
        return {
          audience: resource,
          scope: client.access_token_scope ?? '',
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
          ...(client.access_token_ttl ? { accessTokenTTL: client.access_token_ttl } : {}),
        };
      },
    },
  },
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || 600,
    AuthorizationCode: 60,
    ClientCredentials: 600,
    IdToken: 600,
    Interaction: 600,
    RefreshToken: 86400,
    Session: 86400,
    Grant: 86400,
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>error</title><h1>${escapeHtml(out.error)}</h1>`
      + `<p>${escapeHtml(out.error_description ?? '')}</p>`;
  },
};

const provider = new Provider(issuer, configuration);
for (const event of ['server_error', 'authorization.error', 'grant.error', 'revocation.error',
  'userinfo.error', 'introspection.error', 'jwks.error']) {
  provider.on(event, (_ctx, error) => log(event, error.name, error.message, error.error_description ?? ''));
}
provider.on('grant.success', (ctx) => log('grant.success', ctx.oidc.params.grant_type,
  ctx.oidc.client?.clientId));

function loginPage(uid, error = '') {
  return `<!DOCTYPE html><html><head><title>Sign in</title></head><body>
<h1>Sign in</h1>${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Username <input type="text" name="username" autocomplete="username"></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, contentType, body) {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(body);
}

// The IdP grants what was asked without a consent page: the gateway has its own.
async function grantConsent(req, res, interaction) {
  const { prompt: { details }, params, session } = interaction;
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  const consent = interaction.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function handleInteraction(req, res, uid, action) {
  const interaction = await provider.interactionDetails(req, res);
  if (req.method === 'GET' && !action) {
    if (interaction.prompt.name === 'login') return send(res, 200, 'text/html', loginPage(uid));
    if (interaction.prompt.name === 'consent') return grantConsent(req, res, interaction);
    return send(res, 400, 'text/plain', `unsupported prompt ${interaction.prompt.name}`);
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const username = form.get('username') ?? '';
    const user = readUsers()[username];
    if (!user || user.disabled || user.password !== form.get('password')) {
      log('login refused for', JSON.stringify(username));
      return send(res, 200, 'text/html', loginPage(uid, 'Invalid username or password.'));
    }
    log('login', username);
    return provider.interactionFinished(req, res, { login: { accountId: username } },
      { mergeWithLastSubmission: false });
  }
  return send(res, 404, 'text/plain', 'not found');
}

const stats = { jwks_requests: 0, token_requests: 0 };
const providerCallback = provider.callback();

const server = createServer(async (req, res) => {
  const { pathname } = new URL(req.url, issuer);
  try {
    if (pathname === '/test/stats') return send(res, 200, 'application/json', JSON.stringify(stats));
    const interaction = pathname.match(/^\/interaction\/([^/]+)(?:\/([a-z]+))?$/);
    if (interaction) return await handleInteraction(req, res, interaction[1], interaction[2]);
    if (pathname === '/jwks') stats.jwks_requests += 1;
    if (pathname === '/token') stats.token_requests += 1;
    return providerCallback(req, res);
  } catch (error) {
    log('request failed', req.method, pathname, error.name, error.message);
    if (!res.headersSent) send(res, 400, 'text/plain', `${error.name}: ${error.message}`);
    else res.end();
  }
});

server.listen(port, '127.0.0.1', () => log('listening, issuer', issuer));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}

// An independent fake of the Netlify API, for benchmarks: one Node process, built-in modules only.
//
//   node tests/independent_netlify.mjs --host 127.0.0.1 --port 0 --token TOKEN [--ready-delay-ms N]
//
// prints one line, `listening http://HOST:PORT`, once it accepts connections, and exits on
// SIGTERM or SIGINT.
//
// It was written from Netlify's OpenAPI description (specs/netlify-openapi.yml, Swagger 2.0,
// basePath /api/v1), Netlify's documented file-digest deploy flow and the way netlify-cli's
// own client drives that flow (dist/utils/deploy/deploy-site.js, util.js, upload-files.js),
// independently of tests/fake_netlify.py: it is a second opinion on how Netlify behaves, so
// that a benchmark does not run on a server tuned by the project it measures.
//
// The file-digest deploy, as served here:
//
//   1. POST /sites/{site_id}/deploys with {"files": {"/path": sha1, ...}} (or, as netlify-cli
//      does, an empty deploy first and then PUT /sites/{site_id}/deploys/{deploy_id} with the
//      files). The answer is the deploy with `required`: the distinct sha1s the site does not
//      hold yet. Deduplication is per site: a new site holds nothing.
//   2. Each required file is sent as PUT /deploys/{deploy_id}/files/{path}, raw bytes
//      (application/octet-stream). Its SHA1 must be the one the deploy declared for that path
//      (else 422); a path the deploy did not declare is refused (422).
//   3. Once nothing is missing, the deploy goes to `processing` and then `ready`, after
//      --ready-delay-ms (default 0: at once, within the request that completed it). A deploy
//      that requires nothing goes there as soon as its files are declared (so, by default, it
//      is answered ready). A ready deploy that is neither a draft nor a branch deploy becomes
//      the site's `published_deploy` (restoreSiteDeploy publishes an earlier one again).
//
// States: `new` (no files declared yet), `uploading` (files missing; an `async` deploy shows
// `prepared` until its first upload, which is what netlify-cli's waitForDiff and Netlify's Go
// client wait for), `processing`, `ready`, `error` (cancelled).
//
// Left out: the diff is computed before answering, so an `async` deploy is never seen in
// `preparing`; functions, edge functions and zip deploys (declared functions and edge
// functions are ignored, never required; a zip is refused); builds, forms, DNS, env values
// (the account's env list is empty), deploy locking, pagination headers, rate limits. Only
// the operations in ROUTES exist; anything else is a 404.
//
// Not part of the API, for benchmarks, without auth (and not counted):
//   GET /__stats   {"requests": n, "uploads": n, "upload_bytes": n, "by_route": {...}}: every
//                  request since start or the last reset, 401s and 404s too, by
//                  "METHOD /template" ("METHOD (no route)" for the rest); `uploads` and
//                  `upload_bytes` count the file bodies accepted.
//   POST /__reset  forget every site, deploy and file body, and zero the counters.
//   GET /__routes  the [method, path template] pairs served under /api/v1.

import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const API_PREFIX = '/api/v1';
const MAX_JSON_BODY = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const { values: options } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    token: { type: 'string' },
    'ready-delay-ms': { type: 'string', default: '0' },
  },
});
if (!options.token) {
  process.stderr.write('independent_netlify: --token is required\n');
  process.exit(2);
}
const TOKEN = options.token;
const READY_DELAY_MS = Number(options['ready-delay-ms']);

// ---------------------------------------------------------------------------------------------
// State: one user, one account, the sites and deploys created since the last reset
// ---------------------------------------------------------------------------------------------

const objectId = () => randomBytes(12).toString('hex'); // Netlify's deploy/user/account ids
const now = () => new Date().toISOString();

const STARTED_AT = now();
const USER = {
  id: objectId(),
  uid: objectId(),
  full_name: 'Independent Fake',
  avatar_url: 'https://example.invalid/avatar.png',
  email: 'independent-fake@example.invalid',
  site_count: 0,
  created_at: STARTED_AT,
  last_login: STARTED_AT,
  login_providers: ['email'],
};
const ACCOUNT = {
  id: objectId(),
  name: 'Independent Fake',
  slug: 'independent-fake',
  type: 'personal',
  type_name: 'Starter',
  type_id: objectId(),
  billing_name: 'Independent Fake',
  billing_email: USER.email,
  billing_details: '',
  billing_period: 'monthly',
  payment_method_id: '',
  owner_ids: [USER.id],
  roles_allowed: ['Owner'],
  created_at: STARTED_AT,
  updated_at: STARTED_AT,
};

let sites; // id -> site record (see newSite)
let deploys; // id -> deploy record (see newDeploy)
let blobs; // sha1 -> Buffer: each distinct body once, whichever site sent it
let stats; // what /__stats answers
let generation = 0; // bumped by reset, so timers of a forgotten deploy do nothing
let sequence = 0; // creation order of deploys (timestamps can be equal)

function reset() {
  sites = new Map();
  deploys = new Map();
  blobs = new Map();
  stats = { requests: 0, uploads: 0, upload_bytes: 0, by_route: {} };
  generation += 1;
}
reset();

// ---------------------------------------------------------------------------------------------
// Errors: the spec's `error` definition, {code, message}
// ---------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}
const notFound = (what) => new ApiError(404, `Not Found: ${what}`);
const unprocessable = (message) => new ApiError(422, message);

// ---------------------------------------------------------------------------------------------
// Sites
// ---------------------------------------------------------------------------------------------

function newSite(name) {
  const id = randomUUID();
  const siteName = name || `independent-${randomBytes(4).toString('hex')}`;
  const site = {
    id,
    name: siteName,
    created_at: now(),
    updated_at: now(),
    published_deploy_id: null,
    shas: new Set(), // the sha1s this site holds: what its deploys need not upload again
  };
  sites.set(id, site);
  return site;
}

function siteUrls(name) {
  return {
    url: `http://${name}.netlify.app`,
    ssl_url: `https://${name}.netlify.app`,
    admin_url: `https://app.netlify.com/projects/${name}`,
  };
}

// The spec's `site` definition (properties this fake has a value for).
function siteJson(site) {
  const published = deploys.get(site.published_deploy_id);
  return {
    id: site.id,
    state: 'current',
    plan: 'nf_team_dev',
    name: site.name,
    domain_aliases: [],
    ...siteUrls(site.name),
    deploy_url: `https://main--${site.name}.netlify.app`,
    screenshot_url: `https://example.invalid/screenshots/${site.id}.png`,
    created_at: site.created_at,
    updated_at: site.updated_at,
    user_id: USER.id,
    ssl: true,
    force_ssl: true,
    managed_dns: true,
    published_deploy: published ? deployJson(published) : null, // null until a deploy is live
    account_id: ACCOUNT.id,
    account_name: ACCOUNT.name,
    account_slug: ACCOUNT.slug,
    capabilities: {},
    processing_settings: { html: { pretty_urls: true } },
    build_settings: {},
    id_domain: `${site.id}.netlify.app`,
    default_hooks_data: { access_token: objectId() },
    build_image: 'noble',
    functions_region: 'us-east-2',
    prevent_non_git_prod_deploys: false,
  };
}

function findSite(siteId) {
  const site = sites.get(siteId);
  if (!site) throw notFound(`site ${siteId}`);
  return site;
}

// ---------------------------------------------------------------------------------------------
// Deploys
// ---------------------------------------------------------------------------------------------

// Netlify keys a deploy's files by their path from the site root, with a leading slash;
// netlify-cli sends "index.html", others "/index.html": both mean the same file.
const normalizePath = (path) => (path.startsWith('/') ? path : `/${path}`);

function newDeploy(site, body, title) {
  const deploy = {
    id: objectId(),
    seq: ++sequence,
    site_id: site.id,
    state: 'new',
    draft: body.draft === true,
    async: body.async === true,
    branch: typeof body.branch === 'string' ? body.branch : undefined,
    title, // a query parameter of createSiteDeploy, not a body property
    framework: typeof body.framework === 'string' ? body.framework : undefined,
    function_schedules: Array.isArray(body.function_schedules) ? body.function_schedules : [],
    files: null, // path -> sha1, once declared
    required: [],
    missing: new Set(), // required sha1s not received yet
    error_message: undefined,
    created_at: now(),
    updated_at: now(),
    published_at: undefined,
  };
  deploys.set(deploy.id, deploy);
  return deploy;
}

function context(deploy) {
  if (deploy.branch) return 'branch-deploy';
  return deploy.draft ? 'deploy-preview' : 'production';
}

// A production deploy goes live when ready; drafts and branch deploys only get their own URL.
const publishes = (deploy) => !deploy.draft && !deploy.branch;

// The spec's `deploy` definition (properties this fake has a value for).
function deployJson(deploy) {
  const site = sites.get(deploy.site_id);
  const host = `${deploy.id}--${site.name}.netlify.app`;
  return {
    id: deploy.id,
    site_id: deploy.site_id,
    user_id: USER.id,
    state: deploy.state,
    name: site.name,
    ...siteUrls(site.name),
    deploy_url: `http://${host}`,
    deploy_ssl_url: `https://${host}`,
    draft: deploy.draft,
    required: deploy.required,
    required_functions: [],
    ...(deploy.error_message !== undefined && { error_message: deploy.error_message }),
    ...(deploy.branch !== undefined && { branch: deploy.branch }),
    skipped: false,
    created_at: deploy.created_at,
    updated_at: deploy.updated_at,
    ...(deploy.published_at !== undefined && { published_at: deploy.published_at }),
    ...(deploy.title !== undefined && { title: deploy.title }),
    context: context(deploy),
    locked: false,
    ...(deploy.framework !== undefined && { framework: deploy.framework }),
    function_schedules: deploy.function_schedules,
  };
}

function findDeploy(deployId, siteId) {
  const deploy = deploys.get(deployId);
  if (!deploy || (siteId !== undefined && deploy.site_id !== siteId)) {
    throw notFound(`deploy ${deployId}`);
  }
  return deploy;
}

function touch(deploy, state) {
  deploy.state = state;
  deploy.updated_at = now();
}

// The body of createSiteDeploy/updateSiteDeploy (the spec's `deployFiles`): checked, so a
// client that sends something else hears about it instead of getting a half-made deploy.
function declaredFiles(body) {
  if (body.zip !== undefined) throw unprocessable('zip deploys are not served by this fake');
  if (body.files === undefined) return null;
  if (typeof body.files !== 'object' || body.files === null || Array.isArray(body.files)) {
    throw unprocessable('files must be an object of path: sha1');
  }
  const files = new Map();
  for (const [path, sha] of Object.entries(body.files)) {
    if (typeof sha !== 'string' || !/^[0-9a-f]{40}$/.test(sha)) {
      throw unprocessable(`files[${JSON.stringify(path)}] is not a SHA1 hex digest`);
    }
    files.set(normalizePath(path), sha);
  }
  return files;
}

// The diff: which of the declared files' contents the site does not hold yet.
function declare(deploy, files) {
  const site = sites.get(deploy.site_id);
  deploy.files = files;
  deploy.required = [...new Set(files.values())].filter((sha) => !site.shas.has(sha));
  deploy.missing = new Set(deploy.required);
  if (deploy.missing.size === 0) {
    startProcessing(deploy);
  } else {
    touch(deploy, deploy.async ? 'prepared' : 'uploading');
  }
}

function startProcessing(deploy) {
  touch(deploy, 'processing');
  if (READY_DELAY_MS > 0) {
    const seen = generation;
    setTimeout(() => {
      if (seen === generation && deploy.state === 'processing') becomeReady(deploy);
    }, READY_DELAY_MS);
  } else {
    becomeReady(deploy);
  }
}

function becomeReady(deploy) {
  touch(deploy, 'ready');
  if (publishes(deploy)) publish(deploy);
}

function publish(deploy) {
  const site = sites.get(deploy.site_id);
  deploy.published_at = now();
  site.published_deploy_id = deploy.id;
  site.updated_at = now();
}

// Uploads are taken once the files are declared, and still after the last missing one made the
// deploy ready: netlify-cli sends a body once per path, so two paths with the same content
// mean a second upload of a sha1 that is no longer missing.
const acceptsUploads = (deploy) => deploy.files !== null && deploy.state !== 'error';
// The files can be (re)declared until the deploy is complete.
const acceptsFiles = (deploy) => ['new', 'prepared', 'uploading'].includes(deploy.state);

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

const MIME_TYPES = {
  html: 'text/html', htm: 'text/html', css: 'text/css', js: 'application/javascript',
  mjs: 'application/javascript', json: 'application/json', txt: 'text/plain', xml: 'application/xml',
  svg: 'image/svg+xml', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif',
  webp: 'image/webp', ico: 'image/x-icon', woff: 'font/woff', woff2: 'font/woff2', pdf: 'application/pdf',
  toml: 'application/toml', wasm: 'application/wasm', map: 'application/json',
};
function mimeType(path) {
  const dot = path.lastIndexOf('.');
  const ext = dot > path.lastIndexOf('/') ? path.slice(dot + 1).toLowerCase() : '';
  return MIME_TYPES[ext] ?? 'application/octet-stream';
}

// The spec's `file` definition, plus the deploy it belongs to.
function fileJson(deploy, path, sha) {
  return {
    id: path,
    path,
    sha,
    mime_type: mimeType(path),
    size: blobs.get(sha)?.length ?? 0,
    deploy_id: deploy.id,
  };
}

// ---------------------------------------------------------------------------------------------
// Operations, by operationId. Each gets {params, query, body, req} and returns [status, json].
// ---------------------------------------------------------------------------------------------

function paginate(items, query) {
  const perPage = Math.max(1, Math.min(Number(query.get('per_page')) || 100, 1000));
  const page = Math.max(1, Number(query.get('page')) || 1);
  return items.slice((page - 1) * perPage, page * perPage);
}

const newestFirst = (a, b) => b.seq - a.seq;

const operations = {
  getCurrentUser: () => [200, { ...USER, site_count: sites.size }],

  listAccountsForUser: () => [
    200,
    [{ ...ACCOUNT, capabilities: { sites: { included: 500, used: sites.size }, collaborators: { included: 1, used: 1 } } }],
  ],

  getEnvVars: ({ params }) => {
    if (params.account_id !== ACCOUNT.id && params.account_id !== ACCOUNT.slug) {
      throw notFound(`account ${params.account_id}`);
    }
    return [200, []];
  },

  // `name` is a search on the site name, as on Netlify (clients keep the exact match).
  listSites: ({ query }) => {
    const name = query.get('name');
    const all = [...sites.values()].filter((site) => !name || site.name.includes(name));
    return [200, paginate(all, query).map(siteJson)];
  },

  createSite: ({ body }) => {
    const name = typeof body.name === 'string' && body.name !== '' ? body.name : undefined;
    if (name !== undefined && !/^[a-z0-9][a-z0-9-]*$/i.test(name)) {
      throw unprocessable('name: only letters, digits and dashes');
    }
    if (name !== undefined && [...sites.values()].some((site) => site.name === name)) {
      throw unprocessable('name: must be unique');
    }
    return [201, siteJson(newSite(name))];
  },

  getSite: ({ params }) => [200, siteJson(findSite(params.site_id))],

  listSiteDeploys: ({ params, query }) => {
    findSite(params.site_id);
    const state = query.get('state');
    const mine = [...deploys.values()]
      .filter((deploy) => deploy.site_id === params.site_id && (!state || deploy.state === state))
      .sort(newestFirst);
    return [200, paginate(mine, query).map(deployJson)];
  },

  createSiteDeploy: ({ params, query, body, req }) => {
    const site = findSite(params.site_id);
    if ((req.headers['content-type'] ?? '').startsWith('application/zip')) {
      throw unprocessable('zip deploys are not served by this fake');
    }
    const files = declaredFiles(body);
    const deploy = newDeploy(site, body, query.get('title') ?? undefined);
    if (files !== null) declare(deploy, files);
    return [200, deployJson(deploy)];
  },

  getSiteDeploy: ({ params }) => [200, deployJson(findDeploy(params.deploy_id, params.site_id))],

  // netlify-cli creates an empty deploy first, then declares its files here.
  updateSiteDeploy: ({ params, body }) => {
    const deploy = findDeploy(params.deploy_id, params.site_id);
    if (!acceptsFiles(deploy)) throw unprocessable(`deploy ${deploy.id} is ${deploy.state}: its files are set`);
    const files = declaredFiles(body);
    if (typeof body.draft === 'boolean') deploy.draft = body.draft;
    if (typeof body.async === 'boolean') deploy.async = body.async;
    if (typeof body.branch === 'string') deploy.branch = body.branch;
    if (typeof body.framework === 'string') deploy.framework = body.framework;
    if (files !== null) declare(deploy, files);
    else deploy.updated_at = now();
    return [200, deployJson(deploy)];
  },

  getDeploy: ({ params }) => [200, deployJson(findDeploy(params.deploy_id))],

  // The upload itself is read by receiveUpload (the body is streamed into a hash).
  uploadDeployFile: ({ params, upload }) => {
    const deploy = findDeploy(params.deploy_id);
    const { path, declared, sha, size } = upload;
    if (declared !== sha) {
      throw unprocessable(`${path}: the body's SHA1 is ${sha}, the deploy declared ${declared}`);
    }
    const site = sites.get(deploy.site_id);
    site.shas.add(sha);
    stats.uploads += 1;
    stats.upload_bytes += size;
    if (deploy.missing.delete(sha)) {
      if (deploy.state === 'prepared') touch(deploy, 'uploading');
      if (deploy.missing.size === 0) startProcessing(deploy);
    }
    return [200, fileJson(deploy, path, sha)];
  },

  listSiteFiles: ({ params }) => {
    const site = findSite(params.site_id);
    const live = deploys.get(site.published_deploy_id);
    if (!live) return [200, []];
    const paths = [...live.files.keys()].sort();
    return [200, paths.map((path) => fileJson(live, path, live.files.get(path)))];
  },

  // Publishes an earlier ready deploy again (a rollback).
  restoreSiteDeploy: ({ params }) => {
    const deploy = findDeploy(params.deploy_id, params.site_id);
    if (deploy.state !== 'ready') throw unprocessable(`deploy ${deploy.id} is ${deploy.state}, not ready`);
    publish(deploy);
    return [201, deployJson(deploy)];
  },

  cancelSiteDeploy: ({ params }) => {
    const deploy = findDeploy(params.deploy_id);
    if (deploy.state === 'ready') throw unprocessable(`deploy ${deploy.id} is ready: too late to cancel`);
    if (deploy.state !== 'error') {
      deploy.error_message = 'Canceled deploy';
      touch(deploy, 'error');
    }
    return [201, deployJson(deploy)];
  },
};

// [method, path template under /api/v1, operationId]: every one is an operation of the spec.
const ROUTES = [
  ['GET', '/user', 'getCurrentUser'],
  ['GET', '/accounts', 'listAccountsForUser'],
  ['GET', '/accounts/{account_id}/env', 'getEnvVars'],
  ['GET', '/sites', 'listSites'],
  ['POST', '/sites', 'createSite'],
  ['GET', '/sites/{site_id}', 'getSite'],
  ['GET', '/sites/{site_id}/deploys', 'listSiteDeploys'],
  ['POST', '/sites/{site_id}/deploys', 'createSiteDeploy'],
  ['GET', '/sites/{site_id}/deploys/{deploy_id}', 'getSiteDeploy'],
  ['PUT', '/sites/{site_id}/deploys/{deploy_id}', 'updateSiteDeploy'],
  ['POST', '/sites/{site_id}/deploys/{deploy_id}/restore', 'restoreSiteDeploy'],
  ['GET', '/sites/{site_id}/files', 'listSiteFiles'],
  ['GET', '/deploys/{deploy_id}', 'getDeploy'],
  ['POST', '/deploys/{deploy_id}/cancel', 'cancelSiteDeploy'],
  ['PUT', '/deploys/{deploy_id}/files/{path}', 'uploadDeployFile'],
];

// A template's {name} matches one segment; {path}, the last, matches the rest (slashes too).
function compile([method, template, operationId]) {
  const names = [];
  const source = template.replace(/\{([^}]+)\}/g, (_, name) => {
    names.push(name);
    return name === 'path' ? '(.+)' : '([^/]+)';
  });
  return { method, template, operationId, names, pattern: new RegExp(`^${source}$`) };
}
const COMPILED = ROUTES.map(compile);

function match(method, path) {
  for (const route of COMPILED) {
    if (route.method !== method) continue;
    const found = route.pattern.exec(path);
    if (!found) continue;
    const params = {};
    route.names.forEach((name, index) => {
      params[name] = decodeURIComponent(found[index + 1]);
    });
    return { route, params };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

function send(res, status, payload) {
  const text = JSON.stringify(payload);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

const sendError = (res, error) => send(res, error.code, { code: error.code, message: error.message });

// Reads the whole body. (An error answered before the body is read is fine: Node's server
// discards the rest of the body and keeps the connection.)
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_JSON_BODY) chunks.push(chunk);
    });
    req.on('end', () => (size > MAX_JSON_BODY ? reject(new ApiError(413, 'body too large')) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
    req.on('close', () => reject(new ApiError(400, 'the client left before the end of the body')));
  });
}

async function readJson(req) {
  const raw = await readBody(req);
  if (raw.length === 0) return {};
  try {
    const body = JSON.parse(raw.toString('utf8'));
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
    return body;
  } catch {
    throw new ApiError(400, 'the body is not a JSON object');
  }
}

// Streams an upload's body into SHA1; keeps the bytes only when no body with that SHA1 is held.
function receiveUpload(req, params) {
  const deploy = findDeploy(params.deploy_id);
  const path = normalizePath(params.path);
  if (!acceptsUploads(deploy)) {
    throw unprocessable(`deploy ${deploy.id} is ${deploy.state}: it takes no uploads`);
  }
  const declared = deploy.files.get(path);
  if (declared === undefined) throw unprocessable(`${path} is not a file of deploy ${deploy.id}`);
  return new Promise((resolve, reject) => {
    const hash = createHash('sha1');
    const keep = blobs.has(declared) ? null : [];
    let size = 0;
    req.on('data', (chunk) => {
      hash.update(chunk);
      size += chunk.length;
      keep?.push(chunk);
    });
    req.on('end', () => {
      const sha = hash.digest('hex');
      if (keep && sha === declared && !blobs.has(sha)) blobs.set(sha, Buffer.concat(keep, size));
      resolve({ path, declared, sha, size });
    });
    req.on('error', reject);
    req.on('close', () => reject(new ApiError(400, 'the client left before the end of the body')));
  });
}

const authorized = (req) => req.headers.authorization === `Bearer ${TOKEN}`;

function count(key) {
  stats.requests += 1;
  stats.by_route[key] = (stats.by_route[key] ?? 0) + 1;
}

async function handleApi(req, res, method, path, query) {
  const found = match(method, path);
  count(found ? `${method} ${found.route.template}` : `${method} (no route)`);
  if (!authorized(req)) throw new ApiError(401, 'Access Denied: a valid Bearer token is required');
  if (!found) throw notFound(`${method} ${API_PREFIX}${path}`);
  const { route, params } = found;
  const call = { params, query, req, body: {} };
  if (route.operationId === 'uploadDeployFile') {
    call.upload = await receiveUpload(req, params);
  } else if (method === 'POST' || method === 'PUT') {
    call.body = await readJson(req);
  }
  const [status, payload] = operations[route.operationId](call);
  send(res, status, payload);
}

function handleInternal(req, res, method, path) {
  if (method === 'GET' && path === '/__stats') return send(res, 200, stats);
  if (method === 'GET' && path === '/__routes') return send(res, 200, ROUTES.map(([m, t]) => [m, t]));
  if (method === 'POST' && path === '/__reset') {
    reset();
    return send(res, 200, { reset: true });
  }
  return send(res, 404, { code: 404, message: `Not Found: ${method} ${path}` });
}

async function handle(req, res) {
  const [rawPath, rawQuery = ''] = req.url.split('?', 2);
  const method = req.method;
  try {
    if (rawPath.startsWith('/__')) return handleInternal(req, res, method, rawPath);
    if (rawPath !== API_PREFIX && !rawPath.startsWith(`${API_PREFIX}/`)) {
      count(`${method} (no route)`);
      throw notFound(`${method} ${rawPath}`);
    }
    await handleApi(req, res, method, rawPath.slice(API_PREFIX.length), new URLSearchParams(rawQuery));
  } catch (error) {
    if (res.destroyed) return; // the client left mid-request: nobody to answer
    if (res.headersSent) return res.destroy();
    if (error instanceof ApiError) return sendError(res, error);
    if (error instanceof URIError) return sendError(res, new ApiError(400, 'bad percent-encoding in the path'));
    process.stderr.write(`independent_netlify: ${error?.stack ?? error}\n`);
    return sendError(res, new ApiError(500, 'internal error of the fake'));
  }
}

const server = createServer((req, res) => {
  handle(req, res);
});
// HTTP/1.1 keep-alive is Node's default; a long idle timeout lets a client reuse its
// connections across a whole deploy (Node's own default closes them after 5 s).
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;

server.listen(Number(options.port), options.host, () => {
  const { port } = server.address();
  process.stdout.write(`listening http://${options.host}:${port}\n`);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

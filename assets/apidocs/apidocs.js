// The API reference: reads the server's OpenAPI document and draws each
// operation, grouped by tag, with its parameters, body, responses, the
// credentials it takes and a curl example to copy. Everything from the
// document is set as text, never as HTML.

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// `#/components/schemas/Name` → the schema it names.
function resolve(doc, schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 10) {
    const name = schema.$ref.split('/').pop();
    schema = doc.components?.schemas?.[name];
  }
  return schema || {};
}

function refName(schema) {
  return schema?.$ref ? schema.$ref.split('/').pop() : null;
}

// A short type: `string`, `string | null`, `array of ThreadId`, `Role`.
function typeOf(doc, schema) {
  if (!schema) return 'any';
  const name = refName(schema);
  if (name) return name;
  for (const key of ['oneOf', 'anyOf']) {
    if (schema[key]) return schema[key].map((s) => typeOf(doc, s)).join(' | ');
  }
  const types = Array.isArray(schema.type) ? schema.type : [schema.type || 'any'];
  return types
    .map((t) => (t === 'array' ? `array of ${typeOf(doc, schema.items)}` : t))
    .map((t) => (schema.format && t !== 'null' && !t.startsWith('array') ? `${t} (${schema.format})` : t))
    .join(' | ');
}

function fieldsTable(doc, schema) {
  const resolved = resolve(doc, schema);
  const props = resolved.properties;
  if (!props) return h('p', {}, h('code', {}, typeOf(doc, schema)));
  const required = new Set(resolved.required || []);
  return h(
    'table',
    {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'Type'), h('th', {}, 'Required'), h('th', {}, 'Description'))),
    h(
      'tbody',
      {},
      Object.entries(props).map(([name, prop]) => {
        const inner = resolve(doc, prop);
        const values = inner.enum ? ` (${inner.enum.join(', ')})` : '';
        return h(
          'tr',
          {},
          h('td', {}, h('code', {}, name)),
          h('td', {}, typeOf(doc, prop) + values),
          h('td', {}, required.has(name) ? 'yes' : ''),
          h('td', {}, prop.description || inner.description || ''),
        );
      }),
    ),
  );
}

// An example value for a schema, for the curl line.
function exampleOf(doc, schema, depth = 0) {
  const s = resolve(doc, schema);
  if (s.example !== undefined) return s.example;
  if (depth > 3) return null;
  if (s.enum) return s.enum[0];
  if (s.oneOf) return exampleOf(doc, s.oneOf.find((x) => x.type !== 'null') || s.oneOf[0], depth + 1);
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
  if (type === 'object' || s.properties) {
    const out = {};
    for (const name of s.required || []) out[name] = exampleOf(doc, s.properties?.[name], depth + 1);
    return out;
  }
  if (type === 'array') return [];
  if (type === 'integer' || type === 'number') return 1;
  if (type === 'boolean') return false;
  if (s.format === 'uuid') return '01890000-0000-7000-8000-000000000000';
  return 'text';
}

function curlOf(doc, method, path, op) {
  const base = window.location.origin;
  const parts = [`curl -X ${method.toUpperCase()} '${base}${path}'`];
  const schemes = (op.security || []).flatMap((r) => Object.keys(r));
  if (schemes.includes('agentJwt')) parts.push(`-H 'Authorization: Bearer $ACCESS_TOKEN'`);
  else if (schemes.includes('apiToken')) parts.push(`-H 'Authorization: Bearer $API_TOKEN'`);
  else if (schemes.includes('memberToken')) parts.push(`-H 'Authorization: Bearer $MEMBER_TOKEN'`);
  else if (schemes.includes('visitorSession')) parts.push(`-H 'Authorization: Bearer $SESSION_TOKEN'`);
  const content = op.requestBody?.content || {};
  if (content['application/json']) {
    const body = JSON.stringify(exampleOf(doc, content['application/json'].schema));
    parts.push(`-H 'Content-Type: application/json'`, `-d '${body.replaceAll("'", "'\\''")}'`);
  } else if (content['multipart/form-data']) {
    parts.push(`-F 'file=@./picture.png'`);
  }
  return parts.join(' \\\n  ');
}

function paramsTable(doc, params) {
  return h(
    'table',
    {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'In'), h('th', {}, 'Type'), h('th', {}, 'Required'), h('th', {}, 'Description'))),
    h(
      'tbody',
      {},
      params.map((p) =>
        h(
          'tr',
          {},
          h('td', {}, h('code', {}, p.name)),
          h('td', {}, p.in),
          h('td', {}, typeOf(doc, p.schema)),
          h('td', {}, p.required ? 'yes' : ''),
          h('td', {}, p.description || ''),
        ),
      ),
    ),
  );
}

function responsesList(doc, responses) {
  return h(
    'table',
    {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Status'), h('th', {}, 'Description'), h('th', {}, 'Body'))),
    h(
      'tbody',
      {},
      Object.entries(responses || {}).map(([status, r]) => {
        const bodies = Object.entries(r.content || {}).map(([type, c]) => `${typeOf(doc, c.schema)} (${type})`);
        return h('tr', { dataset: { status } }, h('td', {}, h('code', {}, status)), h('td', {}, r.description || ''), h('td', {}, bodies.join(', ')));
      }),
    ),
  );
}

function authOf(doc, op) {
  const schemes = (op.security || []).flatMap((r) => Object.keys(r));
  if (!schemes.length) return h('p', {}, 'None: a public operation.');
  const defs = doc.components?.securitySchemes || {};
  return h(
    'div',
    {},
    h('p', {}, 'Any one of:'),
    h(
      'ul',
      {},
      schemes.map((name) => h('li', {}, h('span', { class: 'chip' }, name), ' ', defs[name]?.description || '')),
    ),
  );
}

function operation(doc, method, path, op) {
  const curl = curlOf(doc, method, path, op);
  const copy = h('button', { type: 'button', class: 'copy' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(curl);
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Select and copy';
    }
  });
  const body = op.requestBody?.content || {};
  const bodyType = Object.keys(body)[0];
  return h(
    'details',
    { class: 'op', id: op.operationId, dataset: { op: `${method.toUpperCase()} ${path}`, search: `${method} ${path} ${(op.tags || []).join(' ')} ${op.summary || ''}`.toLowerCase() } },
    h('summary', {}, h('span', { class: `method method--${method}` }, method), h('span', { class: 'path' }, path), h('span', { class: 'summary' }, op.summary || '')),
    h(
      'div',
      { class: 'body' },
      op.description ? h('p', { class: 'desc' }, op.description) : null,
      h('h3', {}, 'Authentication'),
      authOf(doc, op),
      op.parameters?.length ? [h('h3', {}, 'Parameters'), paramsTable(doc, op.parameters)] : null,
      bodyType ? [h('h3', {}, `Request body (${bodyType})`), fieldsTable(doc, body[bodyType].schema)] : null,
      h('h3', {}, 'Responses'),
      responsesList(doc, op.responses),
      h('h3', {}, 'Example'),
      h('div', { class: 'curl' }, h('pre', {}, h('code', { dataset: { curl: '' } }, curl)), copy),
    ),
  );
}

function render(doc) {
  const byTag = new Map((doc.tags || []).map((t) => [t.name, { description: t.description, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = op.tags?.[0] || 'other';
      if (!byTag.has(tag)) byTag.set(tag, { description: '', ops: [] });
      byTag.get(tag).ops.push([method, path, op]);
    }
  }
  const nav = document.getElementById('tags');
  const main = document.getElementById('ops');
  main.replaceChildren();
  for (const [tag, group] of byTag) {
    if (!group.ops.length) continue;
    nav.append(h('a', { href: `#tag-${tag}` }, `${tag} (${group.ops.length})`));
    main.append(
      h(
        'section',
        { class: 'tag', id: `tag-${tag}`, dataset: { tag } },
        h('h2', {}, tag),
        group.description ? h('p', { class: 'muted' }, group.description) : null,
        group.ops.map(([method, path, op]) => operation(doc, method, path, op)),
      ),
    );
  }
  const target = window.location.hash && document.getElementById(window.location.hash.slice(1));
  if (target instanceof HTMLDetailsElement) {
    target.open = true;
    target.scrollIntoView();
  }
}

function filter(text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  for (const op of document.querySelectorAll('.op')) {
    op.hidden = !words.every((w) => op.dataset.search.includes(w));
  }
  for (const section of document.querySelectorAll('.tag')) {
    section.hidden = ![...section.querySelectorAll('.op')].some((op) => !op.hidden);
  }
}

async function main() {
  const main = document.getElementById('ops');
  try {
    const resp = await fetch('/api/v1/openapi.json');
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const doc = await resp.json();
    document.title = `${doc.info?.title || 'API'} ${doc.info?.version || ''}`.trim();
    render(doc);
    document.body.dataset.ready = 'true';
  } catch (e) {
    main.replaceChildren(h('p', { role: 'alert' }, `The document could not be loaded: ${e.message}`));
  }
  document.getElementById('filter').addEventListener('input', (e) => filter(e.target.value));
}

main();

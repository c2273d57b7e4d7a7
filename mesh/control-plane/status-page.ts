// GET / on the admin port: one HTML page, no external assets, that lists the connected proxies and
// their sync state and refreshes itself from GET /status. Everything a proxy sent (its id, labels)
// is written with textContent, never as HTML; the Content-Security-Policy allows only this page's
// own inline style and script, by hash, and fetches to the same origin.

import { createHash } from 'node:crypto';

const STYLE = `
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  body { margin: 1.5rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
  #config { margin: 0 0 1rem; }
  #rejected { color: #b00020; white-space: pre-wrap; }
  table { border-collapse: collapse; width: 100%; font-size: .9rem; }
  th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #8884; }
  code { font-size: .85rem; }
  .SYNCED { color: #137333; font-weight: 600; }
  .STALE { color: #b06000; font-weight: 600; }
  .NACKED { color: #b00020; font-weight: 600; }
  #updated { color: #888; font-size: .8rem; }
`;

const SCRIPT = `
  const REFRESH_MS = 2000;
  function cell(row, text, className) {
    const td = document.createElement('td');
    if (className) td.className = className;
    td.textContent = text == null ? '' : String(text);
    row.appendChild(td);
    return td;
  }
  function shortVersion(v) { return v ? v.slice(0, 12) : '-'; }
  function render(status) {
    document.getElementById('version').textContent = status.version || 'none';
    document.getElementById('loaded').textContent = status.loadedAt || '-';
    const rejected = document.getElementById('rejected');
    rejected.textContent = status.rejected
      ? 'Last reload rejected at ' + status.rejected.at + ' (proxies keep the last good view):\\n' +
        status.rejected.errors.map((e) => e.location + ' ' + (e.path ? e.path + ': ' : '') + e.message).join('\\n')
      : '';
    const body = document.getElementById('proxies');
    body.replaceChildren();
    for (const p of status.proxies) {
      const row = document.createElement('tr');
      row.dataset.proxyId = p.proxyId;
      cell(row, p.proxyId);
      cell(row, p.kind);
      cell(row, p.identity);
      cell(row, p.address || '');
      cell(row, p.state, p.state).title = p.nackError || '';
      cell(row, shortVersion(p.ackedVersion));
      cell(row, shortVersion(p.latestVersion));
      cell(row, p.nackError || '');
      cell(row, p.certificateExpiry || '-');
      body.appendChild(row);
    }
    document.getElementById('count').textContent = String(status.proxies.length);
    document.getElementById('updated').textContent = 'updated ' + new Date().toISOString();
  }
  async function refresh() {
    try {
      const res = await fetch('status', { cache: 'no-store' });
      if (res.ok) render(await res.json());
      else document.getElementById('updated').textContent = 'GET /status: ' + res.status;
    } catch (err) {
      document.getElementById('updated').textContent = 'control plane unreachable: ' + err;
    }
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
`;

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meshgate control plane</title>
<style>${STYLE}</style>
</head>
<body>
<h1>meshgate control plane</h1>
<p id="config">config <code id="version">…</code> loaded <span id="loaded">…</span>;
<span id="count">0</span> proxies connected</p>
<p id="rejected"></p>
<table>
<thead><tr><th>proxy</th><th>kind</th><th>identity</th><th>address</th><th>state</th>
<th>acked</th><th>latest</th><th>NACK reason</th><th>certificate expires</th></tr></thead>
<tbody id="proxies"></tbody>
</table>
<p id="updated"></p>
<script>${SCRIPT}</script>
</body>
</html>
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src ${hash(STYLE)}`,
  `script-src ${hash(SCRIPT)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

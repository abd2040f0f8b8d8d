// SPDX-License-Identifier: Apache-2.0
// Tenants (instruments, expiry highlighted) and the audit trail (admins).
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { html, fmt, ErrorBox } from '../html.js';

const DAY = 86400000;

function expiry(expires, now) {
  if (!expires) return ['', 'no expiry'];
  const left = (Date.parse(`${expires}T23:59:59Z`) - now) / DAY;
  if (left < 0) return ['expired', `${expires} (expired)`];
  if (left < 90) return ['expiring', `${expires} (${Math.ceil(left)} days left)`];
  return ['', expires];
}

// The cumulative ledger of one tenant: exports per calendar year and origin,
// to every destination together (what the volume thresholds count).
function Ledger({ tenant }) {
  const [entries, setEntries] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api('GET', `/v1/tenants/${encodeURIComponent(tenant)}/ledger`).then((r) => setEntries(r.entries || []), setError);
  }, [tenant]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!entries) return null;
  if (entries.length === 0) return html`<p>Ledger: no exports counted yet.</p>`;
  return html`<table class="data ledger" data-ledger=${tenant}>
    <caption>Cumulative ledger: exports per year and origin, all destinations together</caption>
    <thead><tr><th scope="col">Year</th><th scope="col">Origin</th><th scope="col">PI subjects</th>
      <th scope="col">Sensitive PI subjects</th><th scope="col">Datasets counted</th></tr></thead>
    <tbody>${entries.map((e) => html`<tr data-origin=${e.origin} data-year=${e.year}><td>${e.year}</td><td>${e.origin}</td>
      <td>${Number(e.subjects).toLocaleString('en-US')}</td><td>${Number(e.sensitive_subjects).toLocaleString('en-US')}</td>
      <td title=${(e.datasets || []).join(', ')}>${(e.datasets || []).length}</td></tr>`)}</tbody></table>`;
}

export function TenantsView() {
  const [tenants, setTenants] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api('GET', '/v1/tenants').then((r) => setTenants(r.tenants || []), setError);
  }, []);
  const now = Date.now();
  return html`<h2>Tenants</h2><${ErrorBox} error=${error} />
    ${tenants && tenants.length === 0 && html`<p>No tenant profiles.</p>`}
    ${(tenants || []).map((t) => html`<section class="tenant" data-tenant=${t.id}>
      <h3>${t.id}${t.ciio ? ' (CIIO)' : ''}</h3>
      <p>Registered zones: ${(t.registered_zones || []).join(', ') || 'none'}</p>
      <table class="data"><thead><tr><th scope="col">Instrument</th><th scope="col">From</th><th scope="col">To</th>
        <th scope="col">Reference</th><th scope="col">Valid from</th><th scope="col">Expires</th><th scope="col">Scope</th></tr></thead>
      <tbody>${(t.instruments || []).map((i) => {
        const [cls, text] = expiry(i.expires, now);
        return html`<tr class=${cls}><td>${i.type}</td><td>${i.from}</td><td>${i.to}</td><td>${i.reference}</td>
          <td>${i.valid_from}</td><td class=${`expires ${cls}`}>${text}</td>
          <td>${[...(i.sites || []), ...(i.sectors || []), ...(i.purposes || [])].join(', ') || 'any'}</td></tr>`;
      })}</tbody></table>
      <${Ledger} tenant=${t.id} /></section>`)}`;
}

export function AuditView() {
  const [filter, setFilter] = useState({ tenant: '', job: '', limit: '100' });
  const [records, setRecords] = useState(null);
  const [error, setError] = useState(null);
  const load = async (e) => {
    if (e) e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
    try {
      setRecords((await api('GET', `/v1/audit?${q}`)).records || []);
      setError(null);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load();
  }, []);
  const set = (k) => (e) => setFilter({ ...filter, [k]: e.target.value });
  return html`<h2>Audit trail</h2>
    <form class="filters" onSubmit=${load}>
      <label>Tenant <input value=${filter.tenant} onInput=${set('tenant')} /></label>
      <label>Job <input value=${filter.job} onInput=${set('job')} /></label>
      <label>Limit <input type="number" min="1" value=${filter.limit} onInput=${set('limit')} /></label>
      <button type="submit">Filter</button>
    </form>
    <${ErrorBox} error=${error} />
    ${records && html`<table class="data" id="audit"><thead><tr><th scope="col">Time</th><th scope="col">Tenant</th><th scope="col">Job</th>
      <th scope="col">Dataset</th><th scope="col">Origin</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Rule</th>
      <th scope="col">Instrument</th><th scope="col">Subjects</th></tr></thead>
      <tbody>${records.map((r) => html`<tr><td>${fmt.time(r.time)}</td><td>${r.tenant}</td><td><a href=${`#/jobs/${r.job}`}>${r.job}</a></td>
        <td>${r.dataset}</td><td>${r.origin}</td><td>${r.from_site}</td><td>${r.to_site} (${r.to_jurisdiction})</td><td>${r.rule}</td>
        <td>${r.instrument}</td><td>${r.subjects}${r.sensitive_subjects ? ` + ${r.sensitive_subjects} sensitive` : ''}</td></tr>`)}</tbody></table>`}`;
}

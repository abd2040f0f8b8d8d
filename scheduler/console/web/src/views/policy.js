// SPDX-License-Identifier: Apache-2.0
// Policy: versions with who, when and what changed; validation of a
// candidate policy with every problem; the what-if of a candidate.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { html, fmt, ErrorBox } from '../html.js';
import { parseDocument, FileInput } from './plan.js';

// A policy as path -> value: list items that have an id are keyed by it
// (sites[hongkong-1].price_per_core_hour), others by position.
export function flatten(value, path = '', out = {}) {
  if (Array.isArray(value)) {
    if (value.length === 0) out[path] = '[]';
    value.forEach((v, i) => {
      const key = v && typeof v === 'object' && !Array.isArray(v) && v.id ? v.id : i;
      flatten(v, `${path}[${key}]`, out);
    });
  } else if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0 && path) out[path] = '{}';
    for (const k of keys) flatten(value[k], path ? `${path}.${k}` : k, out);
  } else {
    out[path] = JSON.stringify(value);
  }
  return out;
}

// What changed from `before` to `after`, field by field.
export function diffPolicies(before, after) {
  // The version label is the versions' own, not a change of the policy.
  const a = flatten({ ...(before || {}), version: undefined });
  const b = flatten({ ...(after || {}), version: undefined });
  const paths = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return paths.filter((p) => a[p] !== b[p]).map((p) => ({ path: p, before: a[p], after: b[p] }));
}

function Changes({ version, previous }) {
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const get = (v) => api('GET', `/v1/policy/versions/${encodeURIComponent(v)}`);
    Promise.all([get(version), previous ? get(previous) : Promise.resolve(null)]).then(
      ([cur, prev]) => setRows(diffPolicies(prev && prev.policy, cur.policy)),
      setError,
    );
  }, [version, previous]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!rows) return html`<p>Loading…</p>`;
  return html`<table class="data" id="policy-diff">
    <caption>${version} against ${previous || 'nothing (the first version)'}: ${rows.length} field(s) changed</caption>
    <thead><tr><th scope="col">Field</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr data-path=${r.path}><td><code>${r.path}</code></td>
      <td class="bad">${r.before ?? '(absent)'}</td><td class="ok">${r.after ?? '(absent)'}</td></tr>`)}</tbody></table>`;
}

function Validation({ result }) {
  return html`<section id="validation" aria-live="polite">
    <p class=${result.valid ? 'ok' : 'bad'}>${result.valid ? 'The policy is valid.' : `${result.errors.length} problem(s):`}</p>
    <ul>${(result.errors || []).map((e) => html`<li class="bad">${e}</li>`)}
      ${(result.warnings || []).map((w) => html`<li class="warning">${w}</li>`)}</ul></section>`;
}

function WhatIf({ result }) {
  const s = result.summary || {};
  return html`<section id="whatif" aria-live="polite">
    <p>${result.jobs_examined} job(s) examined against ${result.policy_version} in ${Number(result.elapsed_ms).toFixed(1)} ms:
      ${s.moved || 0} moved, ${s.newly_unschedulable || 0} newly unschedulable, ${s.newly_schedulable || 0} newly schedulable,
      ${s.newly_waiting || 0} newly waiting, ${s.violations || 0} violation(s); median RTT ${Number(s.rtt_ms_p50_delta || 0).toFixed(1)} ms,
      cost ${Number(s.cost_delta || 0).toFixed(3)} ${s.currency || ''}/h.</p>
    ${(result.warnings || []).map((w) => html`<p class="warning">${w}</p>`)}
    ${(result.changes || []).length > 0 && html`<table class="data"><thead><tr><th scope="col">Job</th><th scope="col">Tenant</th><th scope="col">Change</th>
      <th scope="col">From</th><th scope="col">To</th><th scope="col">Reason</th></tr></thead><tbody>${result.changes.map(
        (c) => html`<tr><td><a href=${`#/jobs/${c.job}`}>${c.job}</a></td><td>${c.tenant}</td><td>${c.kind}</td>
          <td>${c.from ? c.from.site : ''}</td><td>${c.to ? c.to.site : ''}</td><td class="why">${c.reason}</td></tr>`,
      )}</tbody></table>`}
  </section>`;
}

export function PolicyView() {
  const [versions, setVersions] = useState(null);
  const [shown, setShown] = useState(null);
  const [text, setText] = useState('');
  const [validation, setValidation] = useState(null);
  const [whatIf, setWhatIf] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api('GET', '/v1/policy/versions').then((r) => setVersions(r.versions || []), setError);
  }, []);
  const run = async (kind) => {
    setError(null);
    setValidation(null);
    setWhatIf(null);
    try {
      const policy = parseDocument(text, 'the policy');
      if (kind === 'validate') setValidation(await api('POST', '/v1/policy:validate', policy));
      else setWhatIf(await api('POST', '/v1/policy:simulate', { policy }));
    } catch (e) {
      setError(e);
    }
  };
  const loadCurrent = async () => {
    try {
      const p = await api('GET', '/v1/policy');
      delete p.version;
      setText(JSON.stringify(p, null, 2));
    } catch (e) {
      setError(e);
    }
  };
  return html`<h2>Policy</h2>
    <h3>Versions</h3>
    ${versions && html`<table class="data" id="versions"><thead><tr><th scope="col">Version</th><th scope="col">Applied</th>
      <th scope="col">By</th><th scope="col">What changed</th><th scope="col">Diff</th></tr></thead>
      <tbody>${versions.map((v, i) => html`<tr data-version=${v.version}><td>${v.version}</td><td>${fmt.time(v.applied_at)}</td>
        <td>${v.applied_by}</td><td class="why">${v.summary}</td>
        <td><button onClick=${() => setShown(i)} aria-label=${`Show what ${v.version} changed`}>Show changes</button></td></tr>`)}</tbody></table>`}
    ${shown !== null && versions && versions[shown] &&
    html`<${Changes} version=${versions[shown].version} previous=${versions[shown + 1] ? versions[shown + 1].version : ''} />`}
    <h3>Check a candidate policy</h3>
    <form class="doc-form" onSubmit=${(e) => e.preventDefault()}>
      <label for="policy-text">Policy (YAML or JSON)</label>
      <textarea id="policy-text" rows="12" spellcheck="false" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
      <${FileInput} id="policy-file" onText=${setText} />
      <span class="buttons"><button type="button" onClick=${loadCurrent}>Start from the policy in force</button>
      <button type="button" id="validate" onClick=${() => run('validate')}>Validate</button>
      <button type="button" id="what-if" onClick=${() => run('simulate')}>What if?</button></span>
    </form>
    <${ErrorBox} error=${error} />
    ${validation && html`<${Validation} result=${validation} />`}
    ${whatIf && html`<${WhatIf} result=${whatIf} />`}`;
}

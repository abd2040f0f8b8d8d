// SPDX-License-Identifier: Apache-2.0
// Jobs: the list with filters and live updates, and a job's page.
import { useEffect, useState, useRef } from 'preact/hooks';
import { api } from '../api.js';
import { html, fmt, ErrorBox } from '../html.js';
import { Decision } from './explain.js';

export const STATES = ['queued', 'placed', 'staging', 'running', 'succeeded', 'failed', 'cancelled', 'lost', 'unschedulable'];
const ENDED = new Set(['succeeded', 'failed', 'cancelled', 'lost', 'unschedulable']);

export function JobsView({ role, bus }) {
  const [filter, setFilter] = useState({ state: '', tenant: '', site: '' });
  const [jobs, setJobs] = useState(null);
  const [error, setError] = useState(null);
  const timer = useRef(null);
  const load = async (f) => {
    const q = new URLSearchParams({ page_size: '200' });
    if (f.state) q.set('state', f.state);
    if (f.tenant) q.set('tenant', f.tenant);
    try {
      const r = await api('GET', `/v1/jobs?${q}`);
      setJobs(r.jobs || []);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load(filter);
    // A job change reloads the list (at most every half second).
    const off = bus.on((e) => {
      if (!e.job && !e.reset) return;
      clearTimeout(timer.current);
      timer.current = setTimeout(() => load(filter), 500);
    });
    return () => {
      off();
      clearTimeout(timer.current);
    };
  }, [filter.state, filter.tenant]);
  const set = (k) => (e) => setFilter({ ...filter, [k]: e.target.value });
  const shown = (jobs || []).filter((j) => !filter.site || (j.allocation && j.allocation.site === filter.site));
  const sites = [...new Set((jobs || []).map((j) => j.allocation && j.allocation.site).filter(Boolean))].sort();
  return html`<h2>Jobs</h2>
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <label>State <select id="filter-state" value=${filter.state} onChange=${set('state')}>
        <option value="">any</option>${STATES.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      ${role === 'admin' && html`<label>Tenant <input id="filter-tenant" value=${filter.tenant} onChange=${set('tenant')} placeholder="any" /></label>`}
      <label>Site <select id="filter-site" value=${filter.site} onChange=${set('site')}>
        <option value="">any</option>${sites.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
    </form>
    <${ErrorBox} error=${error} />
    ${jobs === null ? html`<p>Loading…</p>` : html`<table class="data" id="jobs">
      <thead><tr><th scope="col">Job</th><th scope="col">Name</th><th scope="col">Tenant</th><th scope="col">State</th>
        <th scope="col">Site</th><th scope="col">Agent</th><th scope="col">Submitted</th><th scope="col">Reason</th></tr></thead>
      <tbody>${shown.map(
        (j) => html`<tr data-job=${j.id} data-tenant=${j.tenant}>
          <td><a href=${`#/jobs/${j.id}`}>${j.id}</a></td><td>${j.name}</td><td>${j.tenant}</td>
          <td><span class=${`state ${j.state}`}>${j.state}</span></td>
          <td>${j.allocation && j.allocation.site}</td><td>${j.allocation && j.allocation.agent}</td>
          <td>${fmt.time(j.submitted_at)}</td><td class="why">${j.reason}</td></tr>`,
      )}</tbody></table>
      ${shown.length === 0 && html`<p id="no-jobs">No jobs match.</p>`}`}`;
}

export function JobView({ id, role, bus, network }) {
  const [job, setJob] = useState(null);
  const [decision, setDecision] = useState(null);
  const [logs, setLogs] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    try {
      const j = await api('GET', `/v1/jobs/${encodeURIComponent(id)}`);
      setJob(j);
      setError(null);
      api('GET', `/v1/jobs/${encodeURIComponent(id)}/explanation`).then(setDecision, () => setDecision(null));
      api('GET', `/v1/jobs/${encodeURIComponent(id)}/logs`).then(setLogs, () => setLogs(null));
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load();
    return bus.on((e) => ((e.job && (e.job.id === id || e.job.array_job === id)) || e.reset) && load());
  }, [id]);
  const cancel = async () => {
    if (!window.confirm(`Cancel job ${id}?`)) return;
    try {
      setJob(await api('DELETE', `/v1/jobs/${encodeURIComponent(id)}`));
    } catch (e) {
      setError(e);
    }
  };
  if (!job) return html`<h2>Job ${id}</h2><${ErrorBox} error=${error} />${!error && html`<p>Loading…</p>`}`;
  const al = job.allocation || {};
  return html`<h2>Job ${job.id} <span class=${`state ${job.state}`} id="job-state">${job.state}</span></h2>
    <${ErrorBox} error=${error} />
    <dl class="facts">
      <dt>Name</dt><dd>${job.name}</dd><dt>Tenant</dt><dd>${job.tenant}</dd><dt>Kind</dt><dd>${job.kind}</dd>
      <dt>Command</dt><dd><code>${(job.command || []).join(' ')}</code></dd>
      <dt>Resources</dt><dd>${job.resources.cpus} CPUs, ${fmt.mb(job.resources.memory_mb)}, ${job.resources.gpus} GPUs</dd>
      <dt>Reason</dt><dd>${job.reason}</dd>
      <dt>Allocation</dt><dd>${al.agent ? `${al.agent} at ${al.site}: PUs ${(al.pus || []).join(',')}; NUMA ${(al.numa_nodes || []).join(',')}${(al.gpu_ids || []).length ? `; GPUs ${al.gpu_ids.join(',')}` : ''}` : 'none'}</dd>
      <dt>Datasets</dt><dd>${(job.datasets || []).map((d) => `${d.id} (${d.origin}, ${d.size_gb} GB at ${d.location || 'no location'}${d.subjects ? `, ${d.subjects} subjects` : ''})`).join('; ') || 'none'}</dd>
    </dl>
    ${!ENDED.has(job.state) && !job.cancel_requested && html`<button onClick=${cancel}>Cancel job</button>`}
    <h3>Explanation</h3>
    ${decision ? html`<${Decision} decision=${decision} job=${job} network=${network} />` : html`<p>No decision recorded.</p>`}
    <h3>Attempts</h3>
    <table class="data"><thead><tr><th scope="col">#</th><th scope="col">Agent</th><th scope="col">Outcome</th><th scope="col">Exit</th><th scope="col">Placed</th><th scope="col">Finished</th><th scope="col">Reason</th></tr></thead>
      <tbody>${(job.attempts || []).map((a) => html`<tr><td>${a.number}</td><td>${a.allocation && a.allocation.agent}</td><td>${a.outcome}</td><td>${a.exit_code}</td><td>${fmt.time(a.placed_at)}</td><td>${fmt.time(a.finished_at)}</td><td class="why">${a.reason}</td></tr>`)}</tbody></table>
    <h3>Events</h3>
    <table class="data" id="job-events"><thead><tr><th scope="col">Time</th><th scope="col">State</th><th scope="col">Message</th></tr></thead>
      <tbody>${(job.events || []).map((e) => html`<tr><td>${fmt.time(e.time)}</td><td>${e.state}</td><td class="why">${e.message}</td></tr>`)}</tbody></table>
    <h3>Logs (tail)</h3>
    ${logs ? html`<pre class="logs" id="job-stdout" aria-label="standard output">${tail(logs.stdout)}</pre>
      ${logs.stderr && html`<pre class="logs err" aria-label="standard error">${tail(logs.stderr)}</pre>`}` : html`<p>No logs.</p>`}`;
}

function tail(s) {
  if (!s) return '(empty)';
  return s.length > 8192 ? `…${s.slice(-8192)}` : s;
}

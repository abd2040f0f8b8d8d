// SPDX-License-Identifier: Apache-2.0
// A placement decision (GET /v1/jobs/{id}/explanation, POST /v1/plan) as a
// table of sites: allowed or not, rule, instrument, RTT, transfer time,
// agents feasible, and why not.
import { html, fmt } from '../html.js';
import { WorldMap } from '../map.js';

function instruments(r) {
  const names = (r.datasets || []).map((d) => d.instrument || d.instrument_ref).filter(Boolean);
  return [...new Set(names)].join(', ');
}

function whyNot(s) {
  if (s.rejected && s.rejected.length) return s.rejected.join('; ');
  if (s.residency && !s.residency.allowed) return s.residency.reason;
  return '';
}

// The arrows of a decision: each dataset's location to the chosen site.
export function arrowsOf(job, decision) {
  const to = (decision && decision.placement && decision.placement.site) || (job.allocation && job.allocation.site);
  if (!to) return [];
  return (job.datasets || [])
    .filter((d) => d.location)
    .map((d) => ({ from: d.location, to, label: `${d.id} (${d.origin}) from ${d.location} to ${to}` }));
}

export function Decision({ decision, job, network }) {
  if (!decision) return null;
  const p = decision.placement || {};
  const a = decision.agents || {};
  const rejected = Object.entries(a.rejected || {}).map(([k, v]) => `${v} ${k}`).join(', ');
  return html`<section class="decision">
    <p class=${decision.feasible ? 'ok' : 'bad'} id="decision-summary">
      ${decision.feasible
        ? `Placed on ${p.agent} at ${p.site} (score ${p.score}).`
        : `Not placeable now: ${decision.reason || 'no feasible agent'}${decision.unschedulable ? ' — no site could ever take it as the policy stands' : ''}.`}
      ${' '}Policy ${decision.policy_version}; agents ${a.feasible || 0}/${a.considered || 0} feasible${rejected ? `; rejected: ${rejected}` : ''}.
    </p>
    ${(p.compliance || []).length > 0 &&
    html`<p>Compliance: ${p.compliance.map((c) => `${c.dataset} under ${c.rule}${c.instrument ? ` (${c.instrument})` : ''}`).join('; ')}</p>`}
    ${(decision.warnings || []).map((w) => html`<p class="warning">${w}</p>`)}
    <table class="data explanation" id="explanation">
      <caption>Every site of the policy, as the decision saw it</caption>
      <thead><tr><th scope="col">Site</th><th scope="col">Regime</th><th scope="col">Allowed</th><th scope="col">Rule</th>
        <th scope="col">Instrument</th><th scope="col">RTT ms</th><th scope="col">Transfer s</th><th scope="col">Agents feasible</th><th scope="col">Why not</th></tr></thead>
      <tbody>${(decision.sites || []).map((s) => {
        const r = s.residency || {};
        const ag = s.agents || {};
        return html`<tr data-site=${s.site} class=${s.site === p.site ? 'chosen' : s.allowed ? '' : 'refused'}>
          <th scope="row">${s.site}${s.site === p.site ? ' ✓' : ''}</th><td>${s.regime}</td>
          <td class=${s.allowed ? 'ok' : 'bad'}>${s.allowed ? 'yes' : 'no'}</td><td>${r.rule || ''}</td>
          <td>${instruments(r)}</td><td>${fmt.ms(s.rtt_ms)}</td><td>${fmt.s(s.transfer_s)}</td>
          <td>${ag.feasible || 0}/${ag.considered || 0}</td><td class="why">${whyNot(s)}</td></tr>`;
      })}</tbody>
    </table>
    ${network && job && html`<${WorldMap} network=${network} arrows=${arrowsOf(job, decision)} selected="" onSelect=${() => {}} />`}
  </section>`;
}

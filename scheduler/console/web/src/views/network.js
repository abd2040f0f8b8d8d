// SPDX-License-Identifier: Apache-2.0
// Map view: sites, links and the RTT matrix; an admin marks links down/up.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { html, fmt, ErrorBox } from '../html.js';
import { WorldMap, RttMatrix } from '../map.js';

function SitePanel({ site, agents, measured }) {
  const here = agents.filter((a) => a.site === site.id);
  const free = here.reduce(
    (t, a) => ({
      cpus: t.cpus + a.capacity.cpus - a.allocated.cpus,
      mem: t.mem + a.capacity.memory_mb - a.allocated.memory_mb,
      gpus: t.gpus + a.capacity.gpus - a.allocated.gpus,
    }),
    { cpus: 0, mem: 0, gpus: 0 },
  );
  return html`<section class="panel" aria-live="polite" id="site-panel">
    <h3>${site.name} <small>(${site.id})</small></h3>
    <dl>
      <dt>Regime</dt><dd>${site.jurisdiction}${site.offshore ? ' — offshore data space' : ''}</dd>
      <dt>Zones</dt><dd>${(site.zones || []).join(', ') || '—'}</dd>
      <dt>Agents</dt><dd>${here.length ? here.map((a) => html`<a href=${`#/agents/${a.id}`}>${a.id}</a> (${a.state}${a.connected ? '' : ', disconnected'}${measuredOf(measured, a.id)}) `) : 'none'}</dd>
      <dt>Free now</dt><dd>${free.cpus} CPUs, ${fmt.mb(free.mem)}, ${free.gpus} GPUs</dd>
      ${site.note && html`<dt>Note</dt><dd>${site.note}</dd>`}
    </dl>
  </section>`;
}

function measuredOf(measured, agent) {
  const m = (measured || []).find((x) => x.agent === agent);
  return m ? `, ${m.rtt_ms.toFixed(1)} ms measured to the scheduler` : '';
}

function LinkPanel({ link, role, onChanged }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const toggle = async () => {
    const verb = link.up ? 'down' : 'up';
    if (!window.confirm(`Mark link ${link.id} ${verb}? Placement and the RTT matrix change at once (a new policy version).`)) return;
    setBusy(true);
    setError(null);
    try {
      await api('PUT', `/v1/network/links/${encodeURIComponent(link.id)}`, { up: !link.up });
      onChanged();
    } catch (e) {
      setError(e);
    }
    setBusy(false);
  };
  return html`<section class="panel" aria-live="polite" id="link-panel">
    <h3>Link ${link.id}</h3>
    <dl>
      <dt>Between</dt><dd>${link.a} — ${link.b}</dd>
      <dt>Kind</dt><dd>${link.kind}${link.cable ? ` (${link.cable})` : ''}</dd>
      <dt>RTT</dt><dd>${link.rtt_ms} ms configured${link.estimate ? ' (estimate)' : ''}</dd>
      <dt>Capacity</dt><dd>${link.gbps} Gbit/s</dd>
      <dt>State</dt><dd class=${link.up ? 'ok' : 'bad'}>${link.up ? 'up' : 'down'}</dd>
    </dl>
    ${role === 'admin' &&
    html`<button id="toggle-link" disabled=${busy} onClick=${toggle}>${link.up ? 'Mark link down' : 'Mark link up'}</button>`}
    <${ErrorBox} error=${error} />
  </section>`;
}

// network: the shell's GET /v1/network (reloaded there on link changes);
// `reload` after this view changed a link. Agents are this view's own.
export function MapView({ role, bus, network, error: networkError, reload }) {
  const [agents, setAgents] = useState([]);
  const [error, setError] = useState(null);
  const [selected, setSelected] = useState({ kind: '', id: '' });
  const loadAgents = async () => {
    try {
      setAgents((await api('GET', '/v1/agents')).agents || []);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    loadAgents();
    return bus.on((e) => (e.agent || e.reset) && loadAgents());
  }, []);
  if (!network) return html`<${ErrorBox} error=${networkError || error} /><p>Loading…</p>`;
  const site = selected.kind === 'site' && network.sites.find((s) => s.id === selected.id);
  const link = selected.kind === 'link' && network.links.find((l) => l.id === selected.id);
  return html`<h2>Map</h2>
    <${ErrorBox} error=${networkError || error} />
    <p class="legend"><span class="key submarine">submarine</span> <span class="key terrestrial">terrestrial</span>
      <span class="key metro">metro</span> <span class="key down">down</span> — select a site or a link for details.</p>
    <div class="map-row">
      <${WorldMap} network=${network} selected=${selected.id}
        onSelect=${(kind, id) => setSelected({ kind, id })} />
      <div class="side">
        ${site && html`<${SitePanel} site=${site} agents=${agents} measured=${network.measured} />`}
        ${link && html`<${LinkPanel} link=${link} role=${role} onChanged=${reload} />`}
      </div>
    </div>
    ${(network.warnings || []).map((w) => html`<p class="warning">${w}</p>`)}
    <h3>Links</h3>
    <table class="data" id="links">
      <thead><tr><th scope="col">Link</th><th scope="col">Between</th><th scope="col">Kind</th><th scope="col">RTT ms</th><th scope="col">Gbit/s</th><th scope="col">State</th></tr></thead>
      <tbody>${network.links.map(
        (l) => html`<tr data-link=${l.id}><td><button class="linklike" onClick=${() => setSelected({ kind: 'link', id: l.id })}>${l.id}</button></td>
          <td>${l.a} — ${l.b}</td><td>${l.kind}${l.cable ? ` (${l.cable})` : ''}</td><td>${l.rtt_ms}</td><td>${l.gbps}</td>
          <td class=${l.up ? 'ok' : 'bad'}>${l.up ? 'up' : 'down'}</td></tr>`,
      )}</tbody>
    </table>
    <${RttMatrix} network=${network} />`;
}

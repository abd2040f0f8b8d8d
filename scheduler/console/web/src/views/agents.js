// SPDX-License-Identifier: Apache-2.0
// Agents: the list with cordon/drain/uncordon, and an agent's machine drawn
// as `portolan agent ID` draws it: packages, NUMA nodes, cores, PUs, GPUs,
// with the job on each PU.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { html, fmt, ErrorBox } from '../html.js';

function Actions({ agent, onDone }) {
  const [error, setError] = useState(null);
  const act = async (action) => {
    if (!window.confirm(`${action} agent ${agent.id}?`)) return;
    try {
      await api('POST', `/v1/agents/${encodeURIComponent(agent.id)}/${action}`);
      setError(null);
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return html`<span class="actions">
    ${agent.state === 'ready' && html`<button onClick=${() => act('cordon')} aria-label=${`Cordon ${agent.id}`}>Cordon</button>
      <button onClick=${() => act('drain')} aria-label=${`Drain ${agent.id}`}>Drain</button>`}
    ${(agent.state === 'cordoned' || agent.state === 'draining') &&
    html`<button onClick=${() => act('uncordon')} aria-label=${`Uncordon ${agent.id}`}>Uncordon</button>`}
    <${ErrorBox} error=${error} /></span>`;
}

export function AgentsView({ bus }) {
  const [agents, setAgents] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    try {
      setAgents((await api('GET', '/v1/agents')).agents || []);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load();
    return bus.on((e) => (e.agent || e.reset) && load());
  }, []);
  return html`<h2>Agents</h2><${ErrorBox} error=${error} />
    ${agents && html`<table class="data" id="agents">
      <thead><tr><th scope="col">Agent</th><th scope="col">Site</th><th scope="col">State</th><th scope="col">CPUs used</th>
        <th scope="col">Memory used</th><th scope="col">GPUs used</th><th scope="col">Jobs</th><th scope="col">Actions</th></tr></thead>
      <tbody>${agents.map(
        (a) => html`<tr data-agent=${a.id}><td><a href=${`#/agents/${a.id}`}>${a.id}</a></td><td>${a.site}</td>
          <td>${a.state}${a.connected ? '' : ' (disconnected)'}</td>
          <td>${a.allocated.cpus}/${a.capacity.cpus}</td><td>${fmt.mb(a.allocated.memory_mb)} / ${fmt.mb(a.capacity.memory_mb)}</td>
          <td>${a.allocated.gpus}/${a.capacity.gpus}</td><td>${(a.jobs || []).length}</td>
          <td><${Actions} agent=${a} onDone=${load} /></td></tr>`,
      )}</tbody></table>`}`;
}

// A stable colour class per job on the drawing.
function jobClass(jobs, id) {
  const i = jobs.indexOf(id);
  return i < 0 ? '' : `job-${i % 8}`;
}

export function Machine({ agent }) {
  const t = agent.topology || {};
  const puJobs = agent.pu_jobs || {};
  const gpuJobs = agent.gpu_jobs || {};
  const jobs = [...new Set([...Object.values(puJobs), ...Object.values(gpuJobs)])].sort();
  const numaFree = agent.numa_free_memory_mb || {};
  const packages = [...new Set((t.cores || []).map((c) => c.package))].sort((a, b) => a - b);
  return html`<div class="machine" role="img" aria-label=${`Machine of agent ${agent.id}: ${t.packages} packages, ${(t.numa_nodes || []).length} NUMA nodes, ${(t.cores || []).length} cores, ${t.pus} PUs, ${(t.gpus || []).length} GPUs`}>
    ${packages.map((p) => {
      const cores = t.cores.filter((c) => c.package === p);
      const numas = [...new Set(cores.map((c) => c.numa))].sort((a, b) => a - b);
      return html`<div class="package"><h4>Package ${p}</h4>${numas.map((n) => {
        const node = (t.numa_nodes || []).find((x) => x.os_index === n) || {};
        return html`<div class="numa" data-numa=${n}><h5>NUMA ${n} — ${fmt.mb(node.memory_mb)}, ${fmt.mb(numaFree[n] ?? node.memory_mb)} free</h5>
          <div class="cores">${cores.filter((c) => c.numa === n).map(
            (c) => html`<div class="core" title=${`core ${c.index}`}>${c.pus.map((pu) => {
              const j = puJobs[pu];
              return html`<span class=${`pu ${j ? `busy ${jobClass(jobs, j)}` : ''}`} data-pu=${pu} title=${j ? `PU ${pu}: ${j}` : `PU ${pu}: free`}>${pu}</span>`;
            })}</div>`,
          )}</div>
          ${(t.gpus || []).filter((g) => g.numa === n).map((g) => html`<${Gpu} gpu=${g} job=${gpuJobs[g.name]} cls=${jobClass(jobs, gpuJobs[g.name])} />`)}
        </div>`;
      })}</div>`;
    })}
    ${(t.gpus || []).filter((g) => g.numa < 0).map((g) => html`<${Gpu} gpu=${g} job=${gpuJobs[g.name]} cls=${jobClass(jobs, gpuJobs[g.name])} />`)}
    ${jobs.length > 0 && html`<p class="jobs-legend">Jobs on this machine: ${jobs.map((j) => html`<span class=${`pu busy ${jobClass(jobs, j)}`}> </span> <a href=${`#/jobs/${j}`}>${j}</a> `)}</p>`}
  </div>`;
}

function Gpu({ gpu, job, cls }) {
  return html`<div class=${`gpu ${job ? `busy ${cls}` : ''}`} title=${`${gpu.name} ${gpu.pci_bus_id}${job ? `: ${job}` : ''}`}>
    GPU ${gpu.name} ${gpu.model || gpu.vendor} ${job ? `— ${job}` : ''}</div>`;
}

export function AgentView({ id, bus }) {
  const [agent, setAgent] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    try {
      setAgent(await api('GET', `/v1/agents/${encodeURIComponent(id)}`));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load();
    return bus.on((e) => ((e.agent && e.agent.id === id) || (e.job && e.job.agent === id) || e.reset) && load());
  }, [id]);
  if (!agent) return html`<h2>Agent ${id}</h2><${ErrorBox} error=${error} />`;
  const t = agent.topology || {};
  return html`<h2>Agent ${agent.id} <small>${agent.site}, ${agent.state}${agent.connected ? '' : ', disconnected'}</small></h2>
    <${ErrorBox} error=${error} />
    <p>${t.source}; ${agent.allocated.cpus}/${agent.capacity.cpus} CPUs, ${fmt.mb(agent.allocated.memory_mb)} of ${fmt.mb(agent.capacity.memory_mb)},${' '}
      ${agent.allocated.gpus}/${agent.capacity.gpus} GPUs allocated. <${Actions} agent=${agent} onDone=${load} /></p>
    <${Machine} agent=${agent} />`;
}

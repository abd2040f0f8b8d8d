// SPDX-License-Identifier: Apache-2.0
// Plan: a job pasted or uploaded (YAML or JSON) and its decision, nothing
// submitted (POST /v1/plan).
import { useState } from 'preact/hooks';
import yaml from 'js-yaml';
import { api, ApiError } from '../api.js';
import { html, ErrorBox } from '../html.js';
import { Decision } from './explain.js';

const EXAMPLE = `name: align
tenant: acme
command: [/bin/true]
resources: {cpus: 4, memory_mb: 8192}
datasets:
  - {id: reads, origin: CN, location: lingang-idc-1, size_gb: 500, categories: [personal], subjects: 250000}
`;

// YAML is a superset of JSON: one parser takes both; its errors name the line.
export function parseDocument(text, what) {
  try {
    const doc = yaml.load(text, { schema: yaml.JSON_SCHEMA });
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new Error(`${what} must be a mapping (an object), not ${Array.isArray(doc) ? 'a list' : typeof doc}`);
    }
    return doc;
  } catch (e) {
    const where = e.mark ? `line ${e.mark.line + 1}, column ${e.mark.column + 1}: ${e.reason}` : e.message;
    throw new ApiError(0, 'invalid_document', `${what}: ${where}`, '');
  }
}

export function FileInput({ id, onText }) {
  return html`<label>Or upload a file <input id=${id} type="file" accept=".yaml,.yml,.json,application/json"
    onChange=${async (e) => e.target.files[0] && onText(await e.target.files[0].text())} /></label>`;
}

export function PlanView({ network }) {
  const [text, setText] = useState(EXAMPLE);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const plan = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const job = parseDocument(text, 'the job');
      setResult({ job, decision: await api('POST', '/v1/plan', job) });
    } catch (err) {
      setResult(null);
      setError(err);
    }
    setBusy(false);
  };
  return html`<h2>Plan a job</h2>
    <p>Where would this job go, and why? Nothing is submitted.</p>
    <form onSubmit=${plan} class="doc-form">
      <label for="plan-text">Job (YAML or JSON)</label>
      <textarea id="plan-text" rows="10" spellcheck="false" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
      <${FileInput} id="plan-file" onText=${setText} />
      <button type="submit" id="plan-submit" disabled=${busy}>Plan</button>
    </form>
    <${ErrorBox} error=${error} />
    ${result && html`<${Decision} decision=${result.decision} job=${result.job} network=${network} />`}`;
}

// SPDX-License-Identifier: Apache-2.0
// The Portolan console: a login form, then the views the token's role may
// use (the REST API decides; the console only hides what would be refused).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, token, probeRole, watchEvents } from './api.js';
import { html, ErrorBox } from './html.js';
import { MapView } from './views/network.js';
import { JobsView, JobView } from './views/jobs.js';
import { PlanView } from './views/plan.js';
import { AgentsView, AgentView } from './views/agents.js';
import { PolicyView } from './views/policy.js';
import { TenantsView, AuditView } from './views/tenants.js';

const VIEWS = {
  admin: ['map', 'jobs', 'plan', 'agents', 'policy', 'tenants', 'audit'],
  operator: ['map', 'agents'],
  tenant: ['jobs', 'plan'],
};
const TITLES = { map: 'Map', jobs: 'Jobs', plan: 'Plan', agents: 'Agents', policy: 'Policy', tenants: 'Tenants', audit: 'Audit' };

// Every view subscribes here to the one events stream of the session.
function makeBus() {
  const subs = new Set();
  return {
    on(f) {
      subs.add(f);
      return () => subs.delete(f);
    },
    emit(e) {
      for (const f of [...subs]) f(e);
    },
  };
}

function useHash() {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const f = () => setHash(window.location.hash);
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
}

function Login({ onLogin, error }) {
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    await onLogin(value.trim());
    setBusy(false);
  };
  return html`<main id="main" class="login">
    <h1>Portolan</h1>
    <form onSubmit=${submit} aria-describedby="login-help">
      <label for="token">Access token</label>
      <input id="token" type="password" autocomplete="off" required value=${value} onInput=${(e) => setValue(e.target.value)} />
      <p id="login-help">The bearer token your administrator gave you (tokens.yaml). It stays in this browser tab only.</p>
      <button type="submit" id="login" disabled=${busy}>Sign in</button>
    </form>
    <${ErrorBox} error=${error} />
  </main>`;
}

function View({ route, role, bus, network: net, reloadNetwork }) {
  const [name, id] = route;
  const network = net.view;
  if (!VIEWS[role].includes(name)) return html`<p>Choose a view above.</p>`;
  switch (name) {
    case 'map':
      return html`<${MapView} role=${role} bus=${bus} network=${network} error=${net.error} reload=${reloadNetwork} />`;
    case 'jobs':
      return id ? html`<${JobView} id=${id} role=${role} bus=${bus} network=${network} />` : html`<${JobsView} role=${role} bus=${bus} />`;
    case 'plan':
      return html`<${PlanView} network=${network} />`;
    case 'agents':
      return id ? html`<${AgentView} id=${id} bus=${bus} />` : html`<${AgentsView} bus=${bus} />`;
    case 'policy':
      return html`<${PolicyView} />`;
    case 'tenants':
      return html`<${TenantsView} />`;
    case 'audit':
      return html`<${AuditView} />`;
    default:
      return null;
  }
}

function Shell({ role, onLogout }) {
  const route = useHash();
  const [bus] = useState(makeBus);
  const [live, setLive] = useState('connecting');
  // The session's one copy of GET /v1/network (map, job and plan pages),
  // reloaded on link changes.
  const [network, setNetwork] = useState({ view: null, error: null });
  const loadNetwork = () =>
    role !== 'tenant' &&
    api('GET', '/v1/network').then(
      (view) => setNetwork({ view, error: null }),
      (error) => setNetwork((n) => ({ ...n, error })),
    );
  useEffect(() => {
    loadNetwork();
    const off = bus.on((e) => (e.link || e.reset) && loadNetwork());
    const stop = watchEvents((e) => bus.emit(e), setLive);
    return () => {
      off();
      stop();
    };
  }, [role]);
  useEffect(() => {
    if (!VIEWS[role].includes(route[0])) window.location.hash = `#/${VIEWS[role][0]}`;
  }, [route[0], role]);
  return html`<a class="skip" href="#main" onClick=${(e) => (e.preventDefault(), document.getElementById('main').focus())}>Skip to content</a>
    <header>
      <h1>Portolan</h1>
      <nav aria-label="Views"><ul>${VIEWS[role].map(
        (v) => html`<li><a href=${`#/${v}`} aria-current=${route[0] === v ? 'page' : undefined}>${TITLES[v]}</a></li>`,
      )}</ul></nav>
      <span class=${`live ${live}`} id="live" role="status">${live === 'live' ? 'live' : live}</span>
      <span class="role" id="role">${role}</span>
      <button id="logout" onClick=${onLogout}>Sign out</button>
    </header>
    <main id="main" tabindex="-1"><${View} route=${route} role=${role} bus=${bus} network=${network}
      reloadNetwork=${loadNetwork} /></main>`;
}

function App() {
  const [role, setRole] = useState(null);
  const [error, setError] = useState(null);
  const login = async (t) => {
    token.set(t);
    try {
      setRole(await probeRole());
      setError(null);
    } catch (e) {
      token.clear();
      if (e.status === 401) e.message = `That token was not accepted: ${e.message}`;
      setError(e);
    }
  };
  useEffect(() => {
    if (token.get()) login(token.get());
  }, []);
  const logout = () => {
    token.clear();
    setRole(null);
    window.location.hash = '';
  };
  return role ? html`<${Shell} role=${role} onLogout=${logout} />` : html`<${Login} onLogin=${login} error=${error} />`;
}

render(html`<${App} />`, document.getElementById('app'));

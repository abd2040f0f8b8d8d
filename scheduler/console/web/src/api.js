// SPDX-License-Identifier: Apache-2.0
// The console's only way to the scheduler: its REST API, with the bearer
// token the user typed, kept in sessionStorage (this tab only, gone when it
// closes; never in a URL or a cookie).
const KEY = 'portolan.token';

export const token = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

// A refusal of the API: its HTTP status and the {code, message, field} of
// the error body (docs/api.md#errors).
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
  describe() {
    return `${this.message}${this.field ? ` (field ${this.field})` : ''} [${this.status} ${this.code}]`;
  }
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token.get()}` };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the scheduler did not answer (${e.message})`, '');
  }
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!r.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(r.status, e.code || `http_${r.status}`, e.message || r.statusText, e.field || '');
  }
  return data;
}

// Which role the token has, found by what the API lets it read (the console
// has no other source of truth): GET /v1/network is for operators and
// admins, GET /v1/tenants for admins. A token the scheduler refuses throws.
export async function probeRole() {
  try {
    await api('GET', '/v1/network');
  } catch (e) {
    if (e.status === 403) return 'tenant';
    throw e;
  }
  try {
    await api('GET', '/v1/tenants');
    return 'admin';
  } catch (e) {
    if (e.status === 403) return 'operator';
    throw e;
  }
}

// Splits server-sent events out of a text stream: returns the complete
// events in `buf` and what is left over.
export function parseSse(buf) {
  const events = [];
  let i;
  while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
    const block = buf.slice(0, i);
    buf = buf.slice(i).replace(/^\r?\n\r?\n/, '');
    const ev = { id: '', event: '', data: '' };
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') ev.data += (ev.data ? '\n' : '') + value;
      else if (field === 'id' || field === 'event') ev[field] = value;
    }
    if (ev.data) events.push(ev);
  }
  return { events, rest: buf };
}

// GET /v1/events read with fetch() (EventSource cannot send an
// Authorization header). Reconnects with Last-Event-ID after a break, with
// a growing pause; stops for good on 401/403. Returns a function that stops.
export function watchEvents(onEvent, onState) {
  let stopped = false;
  let ctrl = null;
  let last = '';
  const loop = async () => {
    let pause = 1000;
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const headers = { Authorization: `Bearer ${token.get()}`, Accept: 'text/event-stream' };
        if (last) headers['Last-Event-ID'] = last;
        const r = await fetch('/v1/events', { headers, signal: ctrl.signal, cache: 'no-store' });
        if (r.status === 401 || r.status === 403) {
          onState('off');
          return;
        }
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        onState('live');
        pause = 1000;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const parsed = parseSse(buf + value);
          buf = parsed.rest;
          for (const ev of parsed.events) {
            if (ev.id) last = ev.id;
            try {
              onEvent(JSON.parse(ev.data));
            } catch {
              /* a malformed event is skipped, the stream goes on */
            }
          }
        }
      } catch {
        if (stopped) return;
      }
      if (stopped) return;
      onState('reconnecting');
      await new Promise((res) => setTimeout(res, pause));
      pause = Math.min(pause * 2, 15000);
    }
  };
  loop();
  return () => {
    stopped = true;
    if (ctrl) ctrl.abort();
  };
}

// SPDX-License-Identifier: Apache-2.0
// JSX-free templates: htm's tagged templates bound to Preact's h().
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);

export const fmt = {
  ms: (v) => (v === undefined || v === null ? '' : v < 0 ? 'unreachable' : `${Number(v).toFixed(1)}`),
  s: (v) => (v === undefined || v === null ? '' : v < 0 ? 'unreachable' : `${Number(v).toFixed(1)}`),
  time: (t) => (t ? new Date(t).toLocaleString() : ''),
  mb: (v) => (v >= 1024 ? `${(v / 1024).toFixed(v % 1024 ? 1 : 0)} GiB` : `${v || 0} MiB`),
};

export function ErrorBox({ error }) {
  if (!error) return null;
  const text = error.describe ? error.describe() : String(error.message || error);
  return html`<p class="error" role="alert">${text}</p>`;
}

// SPDX-License-Identifier: Apache-2.0
// The map of sites and links: the world outline of world-atlas (bundled, no
// network), sites at their latitude/longitude, links as great-circle arcs
// drawn by kind and coloured up/down, labelled with their configured RTT.
// Sites closer together than a map can show (the Shanghai sites are a few
// km apart) get an inset of their own.
import { geoNaturalEarth1, geoMercator, geoPath } from 'd3-geo';
import { feature } from 'topojson-client';
import world from 'world-atlas/countries-110m.json';
import { html, fmt } from './html.js';

const countries = feature(world, world.objects.countries);
const W = 960;
const H = 500;

// Groups of at least two sites within `deg` degrees of each other.
function clusters(sites, deg) {
  const seen = new Set();
  const out = [];
  for (const s of sites) {
    if (seen.has(s.id)) continue;
    const group = sites.filter(
      (t) => Math.abs(t.latitude - s.latitude) < deg && Math.abs(t.longitude - s.longitude) < deg,
    );
    if (group.length > 1) {
      group.forEach((t) => seen.add(t.id));
      out.push(group);
    }
  }
  return out;
}

function fitted(projection, sites, margin, box) {
  const points = [];
  for (const s of sites) {
    for (const d of [-margin, margin]) {
      points.push([s.longitude + d, s.latitude + d]);
    }
  }
  return projection.fitExtent(box, { type: 'MultiPoint', coordinates: points });
}

const at = (s) => [s.longitude, s.latitude];

// Links are drawn straight on the projection (a schematic, not the cable's
// route); several links between the same two sites bow apart so each can be
// seen and selected. Returns {d, mid} in screen coordinates.
// Sites of one cluster count as one end (their links would overlap).
function linkGeometry(links, byId, projection, groupOf) {
  const end = (id) => groupOf[id] || id;
  const pairKey = (l) => [end(l.a), end(l.b)].sort().join('|');
  const pairs = {};
  for (const l of links) {
    const key = pairKey(l);
    (pairs[key] = pairs[key] || []).push(l.id);
  }
  const out = {};
  for (const l of links) {
    const a = byId[l.a] && projection(at(byId[l.a]));
    const b = byId[l.b] && projection(at(byId[l.b]));
    if (!a || !b) continue;
    const same = pairs[pairKey(l)];
    const k = same.indexOf(l.id) - (same.length - 1) / 2;
    const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
    const len = Math.hypot(dx, dy) || 1;
    // Perpendicular of the pair's canonical direction, so both directions bow the same way.
    const sign = end(l.a) < end(l.b) ? 1 : -1;
    const off = k * 28 * sign;
    const c = [(a[0] + b[0]) / 2 - (dy / len) * off, (a[1] + b[1]) / 2 + (dx / len) * off];
    const mid = [0.25 * a[0] + 0.5 * c[0] + 0.25 * b[0], 0.25 * a[1] + 0.5 * c[1] + 0.25 * b[1]];
    out[l.id] = { d: `M${a[0]},${a[1]} Q${c[0]},${c[1]} ${b[0]},${b[1]}`, mid, span: [dx, dy] };
  }
  return out;
}

function Links({ links, byId, projection, selected, onSelect, labels, groupOf }) {
  const geo = linkGeometry(links, byId, projection, groupOf || {});
  // Longest first, so a short link is drawn over the long ones passing by
  // and stays selectable.
  const length = (l) => (geo[l.id] ? Math.hypot(...geo[l.id].span) : 0);
  const ordered = [...links].sort((x, y) => length(y) - length(x));
  return ordered.map((l) => {
    const g = geo[l.id];
    if (!g) return null;
    const state = l.up ? 'up' : 'down';
    const label = `link ${l.id} (${l.kind}${l.cable ? `, ${l.cable}` : ''}) ${l.a} to ${l.b}: ${state}, ${l.rtt_ms} ms configured`;
    return html`<g class=${`link kind-${l.kind} ${state}${selected === l.id ? ' selected' : ''}`}
        data-link=${l.id} data-up=${String(l.up)}>
      <path class="line" d=${g.d} />
      <path class="hit" d=${g.d} tabindex="0" role="button" aria-label=${label}
        onClick=${() => onSelect(l.id)}
        onKeyDown=${(e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), onSelect(l.id))}>
        <title>${label}</title>
      </path>
      ${labels && html`<text class="rtt" x=${g.mid[0]} y=${g.mid[1] - 3}>${l.rtt_ms} ms</text>`}
    </g>`;
  });
}

function Sites({ sites, projection, selected, onSelect, labelled }) {
  return sites.map((s) => {
    const p = projection(at(s));
    if (!p) return null;
    const label = `site ${s.id}: ${s.name}, ${s.jurisdiction}${s.offshore ? ' offshore' : ''}`;
    return html`<g class=${`site${selected === s.id ? ' selected' : ''}`} data-site=${s.id}
        transform=${`translate(${p[0]},${p[1]})`} tabindex="0" role="button" aria-label=${label}
        onClick=${() => onSelect(s.id)} onMouseEnter=${() => onSelect(s.id)}
        onKeyDown=${(e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), onSelect(s.id))}>
      <title>${label}</title>
      <circle r="5" />
      ${labelled && html`<text x="8" y="4">${s.id}</text>`}
    </g>`;
  });
}

function Arrows({ arrows, byId, projection }) {
  return arrows.map((a, i) => {
    const from = byId[a.from];
    const to = byId[a.to];
    if (!from || !to) return null;
    if (a.from === a.to) {
      const p = projection(at(to));
      return html`<circle class="arrow-here" cx=${p[0]} cy=${p[1]} r="11" data-arrow=${`${a.from}>${a.to}`}>
        <title>${a.label}</title></circle>`;
    }
    const [p, q] = [projection(at(from)), projection(at(to))];
    const d = `M${p[0]},${p[1]} L${q[0]},${q[1]}`;
    return html`<path key=${i} class="arrow" d=${d} marker-end="url(#arrowhead)"
        data-arrow=${`${a.from}>${a.to}`}><title>${a.label}</title></path>`;
  });
}

function Layer({ sites, links, byId, projection, selected, onSelect, arrows, labels, groupOf }) {
  const path = geoPath(projection);
  return html`
    <path class="land" d=${path(countries)} />
    <${Links} links=${links} byId=${byId} projection=${projection} groupOf=${groupOf}
      selected=${selected} onSelect=${(id) => onSelect('link', id)} labels=${labels} />
    <${Arrows} arrows=${arrows || []} byId=${byId} projection=${projection} />
    <${Sites} sites=${sites} projection=${projection} selected=${selected}
      onSelect=${(id) => onSelect('site', id)} labelled=${labels} />`;
}

// network: GET /v1/network. arrows: [{from, to, label}] by site id.
// onSelect(kind, id) with kind 'site' or 'link'.
export function WorldMap({ network, arrows, selected, onSelect }) {
  const sites = network.sites || [];
  const links = network.links || [];
  if (!sites.length) return html`<p>The policy names no sites.</p>`;
  const byId = Object.fromEntries(sites.map((s) => [s.id, s]));
  const groups = clusters(sites, 1.5);
  const main = fitted(geoNaturalEarth1(), sites, 8, [[20, 20], [W - 20, H - 20]]);
  const grouped = new Set(groups.flat().map((s) => s.id));
  const groupOf = {};
  groups.forEach((g, i) => g.forEach((s) => (groupOf[s.id] = `cluster-${i}`)));
  // On the main map a cluster's internal links are not drawn (they would be a
  // dot); its sites are, unlabelled, and the inset shows them.
  const outer = links.filter((l) => !(grouped.has(l.a) && grouped.has(l.b) && sameGroup(groups, l)));
  const insets = groups.slice(0, 1).map((g) => {
    const box = emptiestCorner(sites.filter((s) => !grouped.has(s.id)).map((s) => main(at(s))), 290, 220);
    const proj = fitted(geoMercator(), g, 0.12, [[box[0][0] + 10, box[0][1] + 24], [box[1][0] - 60, box[1][1] - 10]]);
    const ids = new Set(g.map((s) => s.id));
    const inner = links.filter((l) => ids.has(l.a) && ids.has(l.b));
    return { box, proj, sites: g, links: inner };
  });
  return html`<svg class="map" viewBox=${`0 0 ${W} ${H}`} role="group" aria-label="Map of sites and links">
    <defs>
      <marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
        <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
      </marker>
      <clipPath id="inset-clip">${insets.map(
        (i) => html`<rect x=${i.box[0][0]} y=${i.box[0][1]} width=${i.box[1][0] - i.box[0][0]} height=${i.box[1][1] - i.box[0][1]} />`,
      )}</clipPath>
    </defs>
    <rect class="sea" width=${W} height=${H} />
    <${Layer} sites=${sites.filter((s) => !grouped.has(s.id))} links=${outer} byId=${byId} projection=${main} groupOf=${groupOf}
      selected=${selected} onSelect=${onSelect} arrows=${arrows} labels=${true} />
    ${groups.map((g) => {
      const p = main([avg(g, 'longitude'), avg(g, 'latitude')]);
      return html`<g class="cluster" transform=${`translate(${p[0]},${p[1]})`}>
        <circle r="7" /><text x="10" y="4">${g.length} sites (inset)</text></g>`;
    })}
    ${insets.map(
      (i) => html`<g class="inset" aria-label="Inset: sites close together">
        <rect class="inset-frame" x=${i.box[0][0]} y=${i.box[0][1]} width=${i.box[1][0] - i.box[0][0]} height=${i.box[1][1] - i.box[0][1]} />
        <g clip-path="url(#inset-clip)">
          <${Layer} sites=${i.sites} links=${i.links} byId=${byId} projection=${i.proj}
            selected=${selected} onSelect=${onSelect} arrows=${(arrows || []).filter((a) => i.sites.some((s) => s.id === a.to) && i.sites.some((s) => s.id === a.from))} labels=${true} />
        </g>
      </g>`,
    )}
  </svg>`;
}

// The corner of the map where an inset of w x h hides the fewest sites.
function emptiestCorner(points, w, h) {
  const corners = [[10, H - h - 10], [W - w - 10, H - h - 10], [10, 10], [W - w - 10, 10]];
  let best = null;
  let fewest = Infinity;
  for (const [x, y] of corners) {
    const n = points.filter((p) => p && p[0] > x - 20 && p[0] < x + w + 20 && p[1] > y - 20 && p[1] < y + h + 20).length;
    if (n < fewest) {
      fewest = n;
      best = [[x, y], [x + w, y + h]];
    }
  }
  return best;
}

function avg(g, k) {
  return g.reduce((t, s) => t + s[k], 0) / g.length;
}

function sameGroup(groups, l) {
  return groups.some((g) => g.some((s) => s.id === l.a) && g.some((s) => s.id === l.b));
}

// The all-pairs shortest RTT over links that are up (NetworkView.matrix).
export function RttMatrix({ network }) {
  const sites = (network.sites || []).map((s) => s.id);
  const cell = {};
  for (const e of network.matrix || []) cell[`${e.from}|${e.to}`] = e;
  return html`<table class="matrix" id="rtt-matrix">
    <caption>Shortest RTT (ms) over links that are up</caption>
    <thead><tr><th scope="col">from \\ to</th>${sites.map((s) => html`<th scope="col">${s}</th>`)}</tr></thead>
    <tbody>${sites.map(
      (a) => html`<tr><th scope="row">${a}</th>${sites.map((b) => {
        const e = a === b ? { rtt_ms: 0 } : cell[`${a}|${b}`] || cell[`${b}|${a}`];
        const v = e ? e.rtt_ms : -1;
        return html`<td data-from=${a} data-to=${b} class=${v < 0 ? 'unreachable' : ''}
          title=${e && e.path ? e.path.join(' → ') : ''}>${v < 0 ? '—' : fmt.ms(v)}</td>`;
      })}</tr>`,
    )}</tbody>
  </table>`;
}

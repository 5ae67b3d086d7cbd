"use strict";
// The dashboard: totals, energy over time, and a breakdown from the ledger.
const $ = (id) => document.getElementById(id);

// Time resolutions, finest first: the chart uses the finest one that keeps the range under MAX_BUCKETS.
// Keys are the ledger's UTC timestamps cut to the resolution (ledger/summary.py key_of).
const MAX_BUCKETS = 180;
const RESOLUTIONS = [
  { by: "minute", ms: 60e3, title: "per minute", parse: (k) => new Date(k + ":00Z"), label: (d) => d.toISOString().slice(11, 16) },
  { by: "hour", ms: 3600e3, title: "per hour", parse: (k) => new Date(k + ":00:00Z"), label: (d) => d.toISOString().slice(5, 13).replace("T", " ") + "h" },
  { by: "day", ms: 86400e3, title: "per day", parse: (k) => new Date(k + "T00:00:00Z"), label: (d) => d.toISOString().slice(5, 10) },
  { by: "month", ms: 0, title: "per month", parse: (k) => new Date(k + "-01T00:00:00Z"), label: (d) => d.toISOString().slice(0, 7) },
];

function next(d, res) {
  if (res.ms) return new Date(d.getTime() + res.ms);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1));
}

function span(groups, res) {
  const keys = Object.keys(groups).filter((k) => k && k !== "-").sort();
  if (!keys.length) return null;
  return [res.parse(keys[0]), res.parse(keys[keys.length - 1])];
}

// Every bucket from the first to the last record, empty ones included, so the axis is linear in time.
function buckets(groups, res) {
  const s = span(groups, res);
  if (!s) return [];
  const byTime = new Map(Object.entries(groups).filter(([k]) => k && k !== "-").map(([k, g]) => [res.parse(k).getTime(), g]));
  const out = [];
  for (let d = s[0]; d <= s[1] && out.length <= 5000; d = next(d, res)) {
    const g = byTime.get(d.getTime());
    out.push({ t: d, e: g ? g.energy_wh : { low: 0, mid: 0, high: 0 } });
  }
  return out;
}

// The coarsest summary first (by day), then finer while the range stays small.
async function series() {
  let res = RESOLUTIONS[2];
  let groups = (await getJSON("/wattlens/api/summary?by=day")).groups;
  const s = span(groups, res);
  if (!s) return { res, points: [] };
  const days = (s[1] - s[0]) / 86400e3 + 1;
  if (days > MAX_BUCKETS) {
    res = RESOLUTIONS[3];
    groups = (await getJSON("/wattlens/api/summary?by=month")).groups;
  } else if (days * 24 <= MAX_BUCKETS) {
    const hours = (await getJSON("/wattlens/api/summary?by=hour")).groups;
    const h = span(hours, RESOLUTIONS[1]);
    const nh = (h[1] - h[0]) / 3600e3 + 1;
    if (nh * 60 <= MAX_BUCKETS) {
      res = RESOLUTIONS[0];
      groups = (await getJSON("/wattlens/api/summary?by=minute")).groups;
    } else {
      res = RESOLUTIONS[1];
      groups = hours;
    }
  }
  return { res, points: buckets(groups, res) };
}

function chart({ res, points }) {
  $("chart-title").textContent = `Energy ${res.title} (line: mid; band: low–high)`;
  if (!points.length) { $("chart").textContent = "no requests yet"; return; }
  const w = 800, h = 200, left = 64, right = 12, top = 12, bottom = 26;
  const max = Math.max(...points.map((p) => p.e.high)) || 1;
  const n = points.length;
  const x = (i) => left + (n === 1 ? (w - left - right) / 2 : (i / (n - 1)) * (w - left - right));
  const y = (v) => top + (1 - v / max) * (h - top - bottom);
  const upper = points.map((p, i) => `${x(i).toFixed(1)},${y(p.e.high).toFixed(1)}`);
  const lower = points.map((p, i) => `${x(i).toFixed(1)},${y(p.e.low).toFixed(1)}`).reverse();
  const band = n === 1
    ? `<rect class="band" x="${x(0) - 6}" y="${y(points[0].e.high)}" width="12" height="${y(points[0].e.low) - y(points[0].e.high)}"/>`
    : `<polygon class="band" points="${upper.concat(lower).join(" ")}"/>`;
  const line = `<polyline class="mid" points="${points.map((p, i) => `${x(i).toFixed(1)},${y(p.e.mid).toFixed(1)}`).join(" ")}"/>`;
  const dots = points.map((p, i) =>
    `<circle cx="${x(i).toFixed(1)}" cy="${y(p.e.mid).toFixed(1)}" r="${n > 60 ? 1.5 : 3}"><title>${res.label(p.t)}: ` +
    `${ivq(p.e, "Wh").replace(/<\/?small>/g, "")}</title></circle>`).join("");
  const ticks = Math.min(n, 8);
  const labels = [];
  for (let j = 0; j < ticks; j++) {
    const i = ticks === 1 ? 0 : Math.round((j * (n - 1)) / (ticks - 1));
    labels.push(`<text x="${x(i)}" y="${h - 8}" text-anchor="middle">${res.label(points[i].t)}</text>`);
  }
  const frame = `<rect class="frame" x="${left}" y="${top}" width="${w - left - right}" height="${h - top - bottom}"/>`;
  const axis = `<line class="axis" x1="${left}" y1="${h - bottom}" x2="${w - right}" y2="${h - bottom}"/>` +
    `<text x="${left - 6}" y="${top + 10}" text-anchor="end">${qty(max, "Wh")}</text>` +
    `<text x="${left - 6}" y="${h - bottom}" text-anchor="end">0</text>`;
  $("chart").innerHTML = `<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="${$("chart-title").textContent}">` +
    `${frame}${band}${line}${dots}${axis}${labels.join("")}</svg>`;
}

function breakdown() {
  const tag = $("tag").value.trim();
  return $("by").value === "tag" ? (tag ? `tag:${encodeURIComponent(tag)}` : "model") : $("by").value;
}

async function load() {
  const [s, timeline] = await Promise.all([getJSON(`/wattlens/api/summary?by=${breakdown()}`), series()]);
  const t = s.total;
  $("t-requests").textContent = String(t.requests);
  $("t-energy").innerHTML = ivq(t.energy_wh, "Wh");
  $("t-carbon").innerHTML = ivq(t.carbon_location_g, "gCO2e");
  $("t-water").innerHTML = ivq(t.water_ml, "mL");
  $("t-per1k").textContent = t.with_receipt ? qty(t.energy_wh.mid / t.with_receipt * 1000, "Wh") : "–";
  const m = t.methods, n = m.measured + m.estimated + m.mixed;
  $("t-methods").textContent = n ? `${(100 * m.measured / n).toFixed(0)}% / ${(100 * m.estimated / n).toFixed(0)}%` : "–";
  const without = t.requests - t.with_receipt;
  $("t-missing").textContent = without ? `${without} of ${t.requests} requests have no receipt (not in the totals)` : "";
  $("t-saved").innerHTML = t.routed ? `${ivq(t.energy_saved_wh, "Wh")} <small>${t.routed_to_small} of ${t.routed} routed to the small model</small>` : "no routed requests";
  const body = $("groups").querySelector("tbody");
  body.innerHTML = "";
  for (const [k, g] of Object.entries(s.groups)) {
    const tr = document.createElement("tr");
    const per1k = g.with_receipt ? qty(g.energy_wh.mid / g.with_receipt * 1000, "Wh") : "–";
    const cells = [k, String(g.requests), qty(g.energy_wh.mid, "Wh"), qty(g.carbon_location_g.mid, "gCO2e"), qty(g.water_ml.mid, "mL"), per1k];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;  // group names come from requests: text, never markup
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  chart(timeline);
  $("versions").textContent = `factor data: ${s.factors_versions.join(", ") || "–"} · figures are mid estimates; ` +
    "cards and the chart's band show low–high intervals";
}

$("by").addEventListener("change", () => {
  $("tag").hidden = $("by").value !== "tag";
  load().catch(console.error);
});
$("tag").addEventListener("change", () => load().catch(console.error));
load().catch((e) => { $("t-requests").textContent = `error: ${e.message}`; });
setInterval(() => load().catch(() => {}), 5000);

"use strict";
// Shared by the playground and the dashboard: number formatting and the grid-mix bar.
const SOURCES = ["nuclear", "hydro", "wind", "solar", "bioenergy", "other", "gas", "oil", "coal"];
const FOSSIL = new Set(["coal", "gas", "oil"]);

function fmt(x) {
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1000 || a < 1e-4) return x.toPrecision(3);
  const digits = Math.max(0, 2 - Math.floor(Math.log10(a)));
  return x.toFixed(digits);
}

function iv(i, unit) {
  return `${fmt(i.mid)} ${unit} <small>(${fmt(i.low)}–${fmt(i.high)})</small>`;
}

function sumIv(a, b) {
  return { low: a.low + b.low, mid: a.mid + b.mid, high: a.high + b.high };
}

function mixBar(bar, legend, mix) {
  bar.innerHTML = "";
  legend.innerHTML = "";
  let fossil = 0;
  const parts = [];
  for (const s of SOURCES) {
    const share = mix[s] || 0;
    if (FOSSIL.has(s)) fossil += share;
    if (share <= 0) continue;
    const seg = document.createElement("span");
    seg.style.width = (share * 100).toFixed(2) + "%";
    seg.style.background = `var(--${s})`;
    seg.title = `${s} ${(share * 100).toFixed(1)}%`;
    bar.appendChild(seg);
    if (share >= 0.005) parts.push(`<i style="background:var(--${s})"></i>${s} ${(share * 100).toFixed(0)}%`);
  }
  bar.setAttribute("aria-label", `grid mix: ${((1 - fossil) * 100).toFixed(0)}% low-carbon, ${(fossil * 100).toFixed(0)}% fossil`);
  legend.innerHTML = parts.join(" ");
}

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

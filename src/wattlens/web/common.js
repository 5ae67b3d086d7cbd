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

// Quantities with a unit picked from a ladder and two significant digits: the same rules as
// wattlens/report/numbers.py (a test runs both on the same values), e.g. "2.2 L (0.45–18 L)".
const LADDERS = {
  Wh: [["Wh", 1], ["kWh", 1e3], ["MWh", 1e6], ["GWh", 1e9], ["TWh", 1e12]],
  W: [["W", 1], ["kW", 1e3], ["MW", 1e6], ["GW", 1e9]],
  mL: [["mL", 1], ["L", 1e3], ["m³", 1e6]],
  gCO2e: [["gCO2e", 1], ["kgCO2e", 1e3], ["tCO2e", 1e6], ["ktCO2e", 1e9]],
};
LADDERS.g = LADDERS.gCO2e;

function group(s) {
  return s.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function num(x, sig = 2) {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 10 ** (sig - 1)) return group(Math.round(x).toFixed(0));
  if (a < 1e-4) return x.toExponential(sig - 1).replace(/e([+-])(\d)$/, "e$10$2");
  let decimals = sig - 1 - Math.floor(Math.log10(a));
  const rounded = Number(x.toFixed(decimals));
  if (Math.abs(rounded) >= 10 ** (sig - 1)) return group(Math.round(rounded).toFixed(0));
  decimals = sig - 1 - Math.floor(Math.log10(Math.abs(rounded)));
  return rounded.toFixed(decimals);
}

function unitScale(x, unit) {
  const ladder = LADDERS[unit];
  if (!ladder) return [1, unit];
  let chosen = ladder[0];
  for (const step of ladder) if (Math.abs(x) >= step[1]) chosen = step;
  return [chosen[1], chosen[0]];
}

function qty(x, unit, sig = 2) {
  const [div, label] = unitScale(x, unit);
  return `${num(x / div, sig)} ${label}`;
}

function ivq(i, unit, sig = 2) {
  if (i.low === i.mid && i.mid === i.high) return qty(i.mid, unit, sig);
  const [div, label] = unitScale(i.mid || i.high, unit);
  return `${num(i.mid / div, sig)} ${label} <small>(${num(i.low / div, sig)}–${num(i.high / div, sig)} ${label})</small>`;
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

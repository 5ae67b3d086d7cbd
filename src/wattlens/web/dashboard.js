"use strict";
// The dashboard: totals, energy per day, and a breakdown from the ledger.
const $ = (id) => document.getElementById(id);

function chart(days) {
  const entries = Object.entries(days);
  const w = 800, h = 180, pad = 24;
  if (!entries.length) { $("chart").textContent = "no requests yet"; return; }
  const max = Math.max(...entries.map(([, g]) => g.energy_wh.mid)) || 1;
  const bw = (w - pad * 2) / entries.length;
  const bars = entries.map(([day, g], i) => {
    const bh = (g.energy_wh.mid / max) * (h - pad * 2);
    const x = pad + i * bw;
    return `<rect x="${x + 2}" y="${h - pad - bh}" width="${Math.max(bw - 4, 1)}" height="${bh}"><title>${day}: ${fmt(g.energy_wh.mid)} Wh</title></rect>` +
           `<text x="${x + bw / 2}" y="${h - 6}" text-anchor="middle">${day.slice(5)}</text>`;
  }).join("");
  $("chart").innerHTML = `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none">${bars}` +
    `<text x="${pad}" y="14">max ${fmt(max)} Wh</text></svg>`;
}

async function load() {
  const by = $("by").value;
  const [s, days] = await Promise.all([getJSON(`/wattlens/api/summary?by=${by}`), getJSON("/wattlens/api/summary?by=day")]);
  const t = s.total;
  const water = t.water_ml;
  $("t-requests").textContent = String(t.requests);
  $("t-energy").innerHTML = iv(t.energy_wh, "Wh");
  $("t-carbon").innerHTML = iv(t.carbon_location_g, "g");
  $("t-water").innerHTML = iv(water, "mL");
  $("t-per1k").textContent = t.with_receipt ? `${fmt(t.energy_wh.mid / t.with_receipt * 1000)} Wh` : "–";
  const m = t.methods, n = m.measured + m.estimated + m.mixed;
  $("t-methods").textContent = n ? `${(100 * m.measured / n).toFixed(0)}% / ${(100 * m.estimated / n).toFixed(0)}%` : "–";
  $("t-saved").innerHTML = t.routed ? `${iv(t.energy_saved_wh, "Wh")} <small>${t.routed_to_small} of ${t.routed} routed to the small model</small>` : "no routed requests";
  const body = $("groups").querySelector("tbody");
  body.innerHTML = "";
  for (const [k, g] of Object.entries(s.groups)) {
    const tr = document.createElement("tr");
    const per1k = g.with_receipt ? fmt(g.energy_wh.mid / g.with_receipt * 1000) : "–";
    tr.innerHTML = `<td>${k}</td><td>${g.requests}</td><td>${fmt(g.energy_wh.mid)}</td>` +
      `<td>${fmt(g.carbon_location_g.mid)}</td><td>${fmt(g.water_ml.mid)}</td><td>${per1k}</td>`;
    body.appendChild(tr);
  }
  chart(days.groups);
  $("versions").textContent = `factor data: ${s.factors_versions.join(", ") || "–"} · figures are mid estimates; ` +
    "cards show low–high intervals";
}

$("by").addEventListener("change", () => load().catch(console.error));
load().catch((e) => { $("t-requests").textContent = `error: ${e.message}`; });
setInterval(() => load().catch(() => {}), 5000);

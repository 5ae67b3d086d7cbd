"use strict";
// The playground: send a chat or embeddings request through the gateway, stream the answer,
// and show the receipt the gateway attached to it.
const state = { total: null, turns: 0, equiv: null };
const $ = (id) => document.getElementById(id);

async function loadModels() {
  const [models, eq] = await Promise.all([getJSON("/wattlens/api/models"), getJSON("/wattlens/api/equivalents")]);
  state.equiv = eq;
  const sel = $("model");
  sel.innerHTML = "";
  for (const m of models.data) {
    const o = document.createElement("option");
    o.value = m.id;
    o.dataset.kind = m.kind;
    o.dataset.local = m.local ? "1" : "";
    const e = m.typical_energy_wh;
    const b = m.typical_energy_basis || {};
    const basis = b.basis === "measured" ? " (measured here)" : b.basis === "estimated" ? " (estimated)" : "";
    o.textContent = e ? `${m.id} · ~${qty(e.mid, "Wh")} per answer${basis}`
      : m.route ? `${m.id} · routed: ${m.route.small} or ${m.route.large}` : `${m.id} · energy unknown`;
    if (b.note) o.title = b.note;
    sel.appendChild(o);
  }
  pickForMode();
  $("model-hint").textContent = `typical answer: ${models.typical.input_tokens} in, ${models.typical.output_tokens} out tokens`;
}

function pickForMode() {
  const mode = $("mode").value;
  for (const o of $("model").options) {
    o.hidden = mode === "embeddings" ? o.dataset.kind !== "embeddings" : o.dataset.kind === "embeddings";
  }
  const shown = [...$("model").options].filter((o) => !o.hidden);
  const first = shown.find((o) => o.dataset.local) || shown[0];  // this machine's model first: it answers offline
  if (first) $("model").value = first.value;
}

function equivalents(fp) {
  const c = state.equiv;
  const wh = fp.energy_wh.mid;
  const led = wh / c.led_bulb_w.value * 3600;
  const phone = wh / c.phone_charge_wh.value * 100;
  const car = fp.carbon_g.location.mid / c.car_g_per_km.value * 1000;
  const water = fp.water_ml.onsite.mid + fp.water_ml.offsite.mid;
  const drops = water / c.drop_ml.value;
  return `≈ a 10 W LED bulb for ${num(led)} s · ${num(phone)}% of a phone charge · ` +
         `${num(car)} m in an average new car · ${num(drops)} drops of water`;
}

function showReceipt(li, fp) {
  const box = li.querySelector(".receipt");
  const water = sumIv(fp.water_ml.onsite, fp.water_ml.offsite);
  box.querySelector(".energy").innerHTML = ivq(fp.energy_wh, "Wh");
  box.querySelector(".carbon").innerHTML = ivq(fp.carbon_g.location, "gCO2e");
  box.querySelector(".water").innerHTML = ivq(water, "mL");
  mixBar(box.querySelector(".mix"), box.querySelector(".mix-legend"), fp.grid.mix);
  box.querySelector(".meta").textContent =
    `${fp.method} · boundary: ${fp.boundary.join(", ")} · grid ${fp.grid.zone} ${fp.grid.year}, ` +
    `${num(fp.grid.intensity_g_per_kwh)} gCO2e/kWh` + (fp.warnings.length ? ` · ${fp.warnings.join(", ")}` : "");
  box.querySelector(".equiv").textContent = equivalents(fp);
  box.dataset.energyMid = String(fp.energy_wh.mid);
  box.hidden = false;
  const t = state.total;
  state.total = t ? { e: sumIv(t.e, fp.energy_wh), c: sumIv(t.c, fp.carbon_g.location), w: sumIv(t.w, water) }
                  : { e: fp.energy_wh, c: fp.carbon_g.location, w: water };
  state.turns += 1;
  $("total-text").innerHTML = `${state.turns} request(s) · ${ivq(state.total.e, "Wh")} · ` +
    `${ivq(state.total.c, "gCO2e")} · ${ivq(state.total.w, "mL")}`;
}

async function* sse(response) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data) yield data;
    }
  }
}

async function send(ev) {
  ev.preventDefault();
  const text = $("prompt").value.trim();
  if (!text) return;
  const li = document.getElementById("turn").content.firstElementChild.cloneNode(true);
  li.querySelector(".you").textContent = text;
  $("log").prepend(li);
  const answer = li.querySelector(".answer");
  $("send").disabled = true;
  $("status").textContent = "working…";
  let budgetWarning = null;
  try {
    if ($("mode").value === "embeddings") {
      const r = await fetch("/v1/embeddings", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: $("model").value, input: text }) });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error ? body.error.message : r.status);
      const v = body.data[0].embedding;
      answer.textContent = `embedding of ${v.length} dimensions: [${v.slice(0, 4).map((x) => x.toFixed(3)).join(", ")}, …]`;
      if (body.usage && body.usage.footprint) showReceipt(li, body.usage.footprint);
    } else {
      const r = await fetch("/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: $("model").value, stream: true, stream_options: { include_usage: true },
                               messages: [{ role: "user", content: text }] }) });
      if (!r.ok) { const b = await r.json(); throw new Error(b.error ? b.error.message : r.status); }
      budgetWarning = r.headers.get("x-wattlens-budget-warning");
      for await (const data of sse(r)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const c of chunk.choices || []) answer.textContent += (c.delta && c.delta.content) || "";
        if (chunk.usage && chunk.usage.footprint) showReceipt(li, chunk.usage.footprint);
      }
    }
    $("status").textContent = budgetWarning ? `budget warning: ${budgetWarning}` : "";
    $("prompt").value = "";
  } catch (e) {
    const err = document.createElement("span");  // the message may quote an upstream: text, never HTML
    err.className = "error";
    err.textContent = String(e.message || e);
    answer.replaceChildren(err);
    $("status").textContent = "failed";
  } finally {
    $("send").disabled = false;
    $("prompt").focus();
  }
}

$("ask").addEventListener("submit", send);
$("mode").addEventListener("change", pickForMode);
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("ask").requestSubmit(); }
});
// The nav's sign-in link: hidden where the gateway has no keys, "Sign out" style text once signed in.
fetch("/wattlens/api/session").then((r) => r.json()).then((s) => {
  const link = $("signin-link");
  if (!link) return;
  if (!s.keys_required) link.hidden = true;
  else if (s.signed_in) link.textContent = `Signed in (${s.admin ? "admin" : s.team || s.key_id})`;
}).catch(() => {});

loadModels().catch((e) => {
  // a gateway with keys and no session: the key is entered once on the sign-in page
  if (/: 401$/.test(e.message)) location.assign("/signin?next=/");
  else $("status").textContent = `could not list models: ${e.message}`;
});

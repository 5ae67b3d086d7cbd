"use strict";
// Sign-in: the key goes once to /wattlens/api/session, which answers with a signed, HttpOnly,
// SameSite=Strict session cookie; then back to the page that sent us here.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function nextPage() {
  const next = params.get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";  // only this gateway's own pages
}

function showWho(s) {
  $("who").hidden = !s.signed_in;
  if (s.signed_in) {
    const scope = s.admin ? "admin: every team" : s.team ? `team ${s.team}` : "no team";
    $("who-text").textContent = `Signed in with key ${s.key_id} (${scope}).`;
  }
}

async function refresh() {
  const s = await (await fetch("/wattlens/api/session")).json();
  if (!s.keys_required) $("why").textContent = "This gateway runs on loopback without keys: no sign-in needed.";
  if (params.get("why") === "team") $("status").textContent = "This key cannot open that page: it needs a team or admin key.";
  showWho(s);
}

$("signin").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("status").textContent = "Signing in…";
  const r = await fetch("/wattlens/api/session", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: $("key").value }),
  });
  $("key").value = "";
  if (!r.ok) {
    const e = await r.json().catch(() => ({}));
    $("status").textContent = (e.error && e.error.message) || `sign-in failed (${r.status})`;
    $("status").className = "error";
    return;
  }
  location.assign(nextPage());
});

$("signout").addEventListener("click", async () => {
  await fetch("/wattlens/api/session", { method: "DELETE" });
  $("status").textContent = "Signed out.";
  $("status").className = "";
  showWho({ signed_in: false });
});

refresh().catch((e) => { $("status").textContent = `could not reach the gateway: ${e.message}`; });

// Who this browser is, and which run its page shows.
// The viewer secret: made once and kept in localStorage, so a reload (or another tab) is the same
// viewer and the runs it made stay its own. It goes to the server in the Socket.IO connect auth
// (connection.js) and, as X-Viewer, with every HTTP request (http.js); the server keeps only a
// hash of it. The run: the address's ?run=<key> (a private run's link), absent for the shared run.
import { embedded } from "./embed.js";

const STORAGE_KEY = "playground.viewer";
const OWN_RUN_KEY = "playground.ownRun";
const SECRET = /^[A-Za-z0-9_-]{16,128}$/; // what the server takes (server/web/runs.py)
export const SHARED = "shared";
let cached;

function newSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  // base64url: 32 characters of [A-Za-z0-9_-]
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function viewerSecret() {
  if (cached) return cached;
  if (embedded()) return (cached = newSecret()); // a framed view is nobody's: it owns no run
  try {
    const kept = localStorage.getItem(STORAGE_KEY);
    if (kept && SECRET.test(kept)) cached = kept;
    else { cached = newSecret(); localStorage.setItem(STORAGE_KEY, cached); }
  } catch {
    cached = cached || newSecret(); // storage refused (privacy mode): this viewer until the tab reloads
  }
  return cached;
}

export const viewerHeaders = () => ({ "X-Viewer": viewerSecret() });

// The run the address names (?run=<key>), or the shared run.
export function runInAddress(href = window.location.href) {
  return new URL(href).searchParams.get("run") || SHARED;
}

// The address with this run in it: ?run=<key> for a private run, none for the shared run; the
// other parameters (the setup) stay as they are.
export function addressWithRun(key, href = window.location.href) {
  const url = new URL(href);
  // The other parameters exactly as written (the setup's commas stay commas).
  const others = url.search.slice(1).split("&").filter((part) => part && !/^run(=|$)/.test(part));
  if (key !== SHARED) others.push(`run=${encodeURIComponent(key)}`);
  return `${url.origin}${url.pathname}${others.length ? `?${others.join("&")}` : ""}${url.hash}`;
}

export function writeRunToAddress(key) {
  const next = addressWithRun(key);
  if (next !== window.location.href) window.history.replaceState(window.history.state, "", next);
  return next;
}

// An endpoint of the run the page is on: "/api/checkpoint?run=p-..." (the shared run: as is).
export const runPath = (path, key) => (key === SHARED ? path : `${path}?run=${encodeURIComponent(key)}`);

// The private run this viewer made last, so the page can offer to go back to it.
export function ownRun() {
  try { return localStorage.getItem(OWN_RUN_KEY); } catch { return null; }
}
export function rememberOwnRun(key) {
  try {
    if (key) localStorage.setItem(OWN_RUN_KEY, key); else localStorage.removeItem(OWN_RUN_KEY);
  } catch { /* storage refused: nothing to offer after a reload */ }
}

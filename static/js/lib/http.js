// HTTP for the page: JSON requests and uploads, each with the control token (lib/access.js)
// and the viewer secret (lib/viewer.js: the owner of a private run may upload into it), so no
// control endpoint can forget them. Resolves with {ok, status, body}; a refusal's body
// carries {error} in words.
import { controlHeaders } from "./access.js";
import { viewerHeaders } from "./viewer.js";

async function answer(response) {
  let body;
  try { body = await response.json(); } catch { body = { error: `the server answered ${response.status}` }; }
  return { ok: response.ok, status: response.status, body };
}

export async function requestJSON(method, url, payload) {
  const headers = { Accept: "application/json", ...controlHeaders(), ...viewerHeaders() };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method, headers, body: payload === undefined ? undefined : JSON.stringify(payload) });
  return answer(response);
}

export async function upload(url, file) {
  const response = await fetch(url, {
    method: "POST", body: file,
    headers: { "Content-Type": "application/octet-stream", Accept: "application/json", ...controlHeaders(), ...viewerHeaders() },
  });
  return answer(response);
}

// A file the server gives only to whoever asks as this viewer (a private run's recorded weights:
// its owner's): fetched with the viewer secret and the control token, then saved as a download.
// Resolves with {ok, error?}.
export async function downloadFile(url) {
  const response = await fetch(url, { headers: { ...controlHeaders(), ...viewerHeaders() } });
  if (!response.ok) {
    const { body } = await answer(response);
    return { ok: false, error: body.error };
  }
  const name = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "")?.[1] || "weights.pt";
  const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(await response.blob()), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  return { ok: true };
}

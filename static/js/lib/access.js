// The control token, in one place: a viewer on another machine controls the run only with the
// token printed where the server started. The page takes it from its URL (?token=...), keeps
// it for this tab (sessionStorage), takes it out of the address bar (screens get projected) and
// hands it to the Socket.IO connect `auth` (connection.js) and, as X-Control-Token, to every
// HTTP request (http.js).
const STORAGE_KEY = "playground.controlToken";
let cached;

export function controlToken() {
  if (cached !== undefined) return cached;
  const params = new URLSearchParams(window.location.search);
  cached = params.get("token") || null;
  try {
    if (cached) sessionStorage.setItem(STORAGE_KEY, cached);
    else cached = sessionStorage.getItem(STORAGE_KEY);
  } catch {
    // storage refused (privacy mode): the token still works until the tab reloads
  }
  if (params.has("token")) {
    params.delete("token");
    const query = params.toString();
    window.history.replaceState(window.history.state, "",
      `${window.location.pathname}${query ? `?${query}` : ""}${window.location.hash}`);
  }
  return cached;
}

export function controlHeaders() {
  const token = controlToken();
  return token ? { "X-Control-Token": token } : {};
}

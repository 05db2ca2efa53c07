// Access: a viewer on another machine controls the run only with the control token printed
// where the server started. The page takes it from its URL (?token=...), keeps it for this tab
// (sessionStorage), takes it out of the address bar (screens get projected) and hands it to
// the Socket.IO connect `auth` and, for HTTP uploads, to an X-Control-Token header.
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

// Headers for fetch() calls that change the run (checkpoint upload and the like).
export function controlHeaders() {
  const token = controlToken();
  return token ? { "X-Control-Token": token } : {};
}

// A badge in the top bar when this viewer may only watch (the server says so on connect).
export default function initAccess({ connection }) {
  const badge = document.createElement("span");
  badge.dataset.testid = "access";
  badge.setAttribute("role", "status");
  badge.hidden = true;
  Object.assign(badge.style, {
    padding: "0.2rem 0.6rem", borderRadius: "999px", fontSize: "0.85rem",
    background: "#8a5a00", color: "#fff", cursor: "help",
  });
  document.querySelector(".topbar")?.append(badge);
  connection.on("access", ({ control, reason }) => {
    badge.hidden = Boolean(control);
    badge.textContent = control ? "" : "watching only";
    badge.title = reason || "";
    document.body.dataset.access = control ? "control" : "watch";
  });
}

// A badge in the top bar when this viewer may only watch (the server says so on connect).
import { element } from "../lib/dom.js";

export default function initAccess({ connection }) {
  const badge = element("span", { className: "access-badge", "data-testid": "access", role: "status" });
  badge.hidden = true;
  document.querySelector(".topbar-badges")?.append(badge);
  connection.on("access", ({ control, reason }) => {
    badge.hidden = Boolean(control);
    badge.textContent = control ? "" : "watching only";
    badge.title = reason || "";
    document.body.dataset.access = control ? "control" : "watch";
  });
}

// What this viewer may do, as the server says at connect ({control, reason}): kept in the
// store (lib/run-control.js turns it into what each control offers), and a badge in the top
// bar while the page shows the shared run and this viewer may only watch it. On a run of its
// own the viewer trains (no badge); on someone's run the run badge says so already.
import { element } from "../lib/dom.js";
import { SHARED_RUN_REASON } from "../lib/run-control.js";
import { SHARED } from "../lib/viewer.js";

export default function initAccess({ store, connection }) {
  const badge = element("span", { className: "access-badge", "data-testid": "access", role: "status" });
  badge.hidden = true;
  document.querySelector(".topbar-badges")?.append(badge);

  function render({ run, access }) {
    const watchingShared = Boolean(access) && !access.control && run.key === SHARED;
    badge.hidden = !watchingShared;
    badge.textContent = watchingShared ? "watching only" : "";
    badge.title = watchingShared ? SHARED_RUN_REASON : "";
    if (access) document.body.dataset.access = access.control ? "control" : "watch";
  }

  connection.on("access", ({ control, reason, viewer }) => store.set({
    access: { control: Boolean(control), reason: reason || "", viewer: viewer ?? null } }));
  store.subscribe((state, patch) => { if ("access" in patch || "run" in patch) render(state); });
}

// Whether this page may control the run it shows, and if not why, in plain words: the one
// place every control (buttons, keys, setup form, Restore, upload, trap) asks. The server
// refuses too; the page does not offer what it would refuse.
//   state: the store's {run, access, server}; access is the server's word at connect ({control}),
//   null until it comes (then the page offers, as before, and the server decides).
import { SHARED } from "./viewer.js";

export const SOMEONES_RUN_REASON = "Only its owner can train this run, so the controls are off. "
  + "“Train my own copy” gives you a run of your own.";
export const SHARED_RUN_REASON = "The shared run is the teacher's: here you can watch it and draw on it, "
  + "not train or change it. “Train my own copy” gives you a run of your own to train.";

export const WATCHED_RUN_REASON = "This network trains in its own script (linear_playground.watch): "
  + "it starts, stops and changes there.";

export function runControl({ run, access, server }) {
  // A script's own network: held and stepped from the page only when its script allows it
  // (watch(..., controllable=True)), by whoever may control the shared run.
  const watched = server?.watched;
  if (watched && run.owner !== "you") {
    const may = watched.controllable && server.status !== "done" && (!access || access.control);
    return may ? { allowed: true, reason: "" } : { allowed: false, reason: WATCHED_RUN_REASON };
  }
  if (run.owner === "someone") return { allowed: false, reason: SOMEONES_RUN_REASON };
  if (run.key === SHARED && access && !access.control) return { allowed: false, reason: SHARED_RUN_REASON };
  return { allowed: true, reason: "" };
}

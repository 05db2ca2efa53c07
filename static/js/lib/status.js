// A run's status, as the server's `state` says it (server/link/names.py STATUSES; a test checks
// they agree). Spelled here once for the page.
export const STATUS = Object.freeze({ idle: "idle", running: "running", paused: "paused", done: "done" });

// The one place for the page's state. Views subscribe and re-render from it; whatever changes
// the state goes through set() (a new object for every changed key, never a change in place),
// so every subscriber hears of every change.
//   connection: "connecting" | "connected" | "disconnected"
//   server:     the latest state of the run the page is on (the `state` broadcast, kept up to
//               date by `metrics` and `epoch`); null until the first one
//   run:        the run the page is on: {key: "shared" | "p-...", owner: "shared" | "you" |
//               "someone" | null (not told yet), control} (features/whose-run.js)
//   access:     what the server said of this viewer at connect: {control, reason}; null
//               until it has (lib/run-control.js turns run + access into what the page offers)
//   answer:     the latest predict answer (null when the canvas is empty)
//   runs:       the runs list ({runs, live_run}); null until it arrives
//   overlays:   recorded runs drawn over the learning curves: [{id, label, color, history, epochs}]
//   privateRuns: the teacher's list of every private run ({runs, memory_bytes}, runs:private);
//               null until asked (features/private-runs.js)
export function createStore(initial) {
  let state = Object.freeze({ ...initial });
  const listeners = new Set();
  return {
    get: () => state,
    set(patch) {
      state = Object.freeze({ ...state, ...patch });
      for (const listener of listeners) listener(state, patch);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

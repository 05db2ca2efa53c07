// "One request in flight, the newest waits": calls made while one runs are folded into one
// more call, with the newest arguments, once it is done. Older waiting calls are dropped.
export function latestOnly(fn) {
  let running = false;
  let queued = null;
  async function run(...args) {
    if (running) { queued = args; return; }
    running = true;
    try {
      await fn(...args);
    } finally {
      running = false;
      if (queued) { const next = queued; queued = null; run(...next); }
    }
  }
  run.cancel = () => { queued = null; };
  return run;
}

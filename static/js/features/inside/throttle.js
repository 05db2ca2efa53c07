// Draw at most every `ms` milliseconds, always ending with the latest state (trailing call),
// and only in an animation frame: while the user draws, answers arrive faster than charts
// need redrawing, and the canvas must stay responsive.
export function throttled(draw, ms) {
  let last = -Infinity;
  let timer = null;
  let frame = null;
  const run = () => {
    frame = null;
    last = performance.now();
    draw();
  };
  return () => {
    if (timer || frame) return; // a draw is already coming, and it will read the latest state
    const wait = last + ms - performance.now();
    if (wait <= 0) frame = requestAnimationFrame(run);
    else timer = setTimeout(() => { timer = null; frame = requestAnimationFrame(run); }, wait);
  };
}

// The drawing canvas: Pointer Events (mouse, touch, pen) -> strokes -> raw ink bytes.
const STROKE_WIDTH = 20; // in canvas pixels (280 wide): about MNIST's stroke once fitted to 20x20
const THROTTLE_MS = 60; // predictions while drawing: at most this often

export function createDrawingCanvas(canvas, { onInk, onClear }) {
  const context = canvas.getContext("2d", { willReadFrequently: true });
  let drawing = false;
  let last = null;
  let hasInk = false;
  let lastSent = 0;
  let pendingTimer = null;

  const toCanvas = (event) => {
    const box = canvas.getBoundingClientRect();
    return { x: ((event.clientX - box.left) * canvas.width) / box.width,
             y: ((event.clientY - box.top) * canvas.height) / box.height };
  };

  // Ink is the alpha channel: the background is transparent, strokes opaque and anti-aliased.
  function inkImage() {
    const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
    const ink = new Uint8Array(canvas.width * canvas.height);
    for (let i = 0; i < ink.length; i += 1) ink[i] = data[i * 4 + 3];
    return { width: canvas.width, height: canvas.height, data: ink };
  }

  function send() {
    lastSent = performance.now();
    pendingTimer = null;
    if (hasInk) onInk(inkImage());
  }

  function scheduleSend(force) {
    const wait = THROTTLE_MS - (performance.now() - lastSent);
    if (force || wait <= 0) {
      clearTimeout(pendingTimer);
      send();
    } else if (!pendingTimer) {
      pendingTimer = setTimeout(send, wait);
    }
  }

  function strokeTo(point) {
    context.beginPath();
    context.moveTo(last.x, last.y);
    context.lineTo(point.x, point.y);
    context.stroke();
    last = point;
    hasInk = true;
  }

  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = STROKE_WIDTH;
  context.strokeStyle = "#111";

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = true;
    last = toCanvas(event);
    strokeTo({ x: last.x + 0.01, y: last.y }); // a dot for a click
    scheduleSend(false);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) strokeTo(toCanvas(e));
    scheduleSend(false);
  });
  const finish = () => {
    if (!drawing) return;
    drawing = false;
    scheduleSend(true);
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);

  return {
    clear() {
      context.clearRect(0, 0, canvas.width, canvas.height);
      hasInk = false;
      clearTimeout(pendingTimer);
      pendingTimer = null;
      onClear();
    },
    hasInk: () => hasInk,
    resend: () => { if (hasInk) send(); },
  };
}

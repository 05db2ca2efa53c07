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
  // Only the ink's bounding box is sent: the server's MNIST preprocessing starts by cropping to
  // it, so the answer is the same, and a digit is a third of the 78 kB canvas to send and read.
  function inkImage() {
    const { width, height } = canvas;
    const { data } = context.getImageData(0, 0, width, height);
    let top = height, bottom = -1, left = width, right = -1;
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        if (data[(y * width + x) * 4 + 3] === 0) continue;
        if (y < top) top = y;
        bottom = y;
        if (x < left) left = x;
        if (x > right) right = x;
      }
    }
    if (bottom < 0) return { width: 1, height: 1, data: new Uint8Array(1) }; // no ink
    const cropWidth = right - left + 1;
    const cropHeight = bottom - top + 1;
    const ink = new Uint8Array(cropWidth * cropHeight);
    for (let y = 0; y < cropHeight; y += 1) {
      for (let x = 0; x < cropWidth; x += 1) ink[y * cropWidth + x] = data[((top + y) * width + left + x) * 4 + 3];
    }
    return { width: cropWidth, height: cropHeight, data: ink };
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

  // A real 28x28 digit (784 bytes, 255 = ink) as ink on the canvas, scaled up smoothly: the
  // same path to the network as a drawing (cropped, fitted and centred on the server).
  function putDigit(pixels) {
    const small = document.createElement("canvas");
    small.width = 28;
    small.height = 28;
    const smallContext = small.getContext("2d");
    const image = smallContext.createImageData(28, 28);
    for (let i = 0; i < 784; i += 1) image.data.set([17, 17, 17, pixels[i]], i * 4);
    smallContext.putImageData(image, 0, 0);
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.imageSmoothingEnabled = true;
    context.drawImage(small, 0, 0, canvas.width, canvas.height);
    hasInk = true;
    clearTimeout(pendingTimer);
    send();
  }

  return {
    putDigit,
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

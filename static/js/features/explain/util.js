// Small helpers of the explainer: numbers for people, DOM building, JSON over HTTP.
export const fixed = (value, digits = 4) => (Number.isFinite(value) ? value.toFixed(digits) : String(value));

// A number for a formula: negative numbers in brackets so "+ (-0.45)" reads right.
export const term = (value, digits = 4) => (value < 0 ? `(${fixed(value, digits)})` : fixed(value, digits));

export const thousands = (n) => n.toLocaleString("en-US");

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value == null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("data-") || name.startsWith("aria-") || ["title", "type", "role", "tabindex", "value", "inputmode"].includes(name)) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const code = (text) => element("code", { text });

// JSON over HTTP: resolves with {ok, status, body}; the body of a refusal carries {error}.
export async function requestJSON(method, url, payload) {
  const response = await fetch(url, {
    method,
    headers: payload === undefined ? {} : { "Content-Type": "application/json" },
    body: payload === undefined ? undefined : JSON.stringify(payload),
  });
  let body;
  try { body = await response.json(); } catch { body = { error: `the server answered ${response.status}` }; }
  return { ok: response.ok, status: response.status, body };
}

// A 28x28 (or any square) picture of values on a canvas: grey for inputs in 0..1, blue/red
// around zero for signed values (weights, products), scaled to the largest magnitude.
export function drawSquare(canvas, values, { signed = false } = {}) {
  const side = Math.round(Math.sqrt(values.length));
  if (side * side !== values.length) return false;
  canvas.width = side;
  canvas.height = side;
  const context = canvas.getContext("2d");
  const image = context.createImageData(side, side);
  const scale = signed ? Math.max(1e-12, ...values.map(Math.abs)) : 1;
  values.forEach((value, i) => {
    let rgb;
    if (!signed) {
      const v = Math.round(255 * (1 - Math.min(1, Math.max(0, value))));
      rgb = [v, v, v];
    } else {
      const t = Math.min(1, Math.abs(value) / scale);
      const fade = Math.round(255 * (1 - t));
      rgb = value >= 0 ? [fade, fade, 255] : [255, fade, fade];
    }
    image.data.set([...rgb, 255], i * 4);
  });
  context.putImageData(image, 0, 0);
  return true;
}

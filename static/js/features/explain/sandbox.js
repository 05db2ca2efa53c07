// The Linear sandbox: editable x, W and b; y computed by a real nn.Linear on the server
// (POST /api/linear, through the `api` explain.js hands in), each output cell written out as
// its formula.
import { element, code } from "../../lib/dom.js";
import { fixed, term } from "../../lib/format.js";

const DEBOUNCE_MS = 120;

// "1.5", "-2", "1e-3" are numbers; "", "abc", "1,5" and "1e309" (beyond float range) are not.
function parseNumber(text) {
  const trimmed = text.trim();
  if (!trimmed || !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(trimmed)) return null;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : null;
}

// Why a cell is refused, and what to write instead (maxAbs: the server's bound, from GET /api/linear).
const allowed = (maxAbs) => `a number from ${(-maxAbs).toLocaleString("en-US")} to ${maxAbs.toLocaleString("en-US")}`;

function whyNot(text, maxAbs) {
  const trimmed = String(text).trim();
  if (!trimmed) return `is empty: write ${allowed(maxAbs)}`;
  if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(trimmed)) return `is too large ("${trimmed}" is past what a number can hold): write ${allowed(maxAbs)}`;
  return `is not a number: "${text}" (write it like 0.5, -2 or 1e-3)`;
}

function resize(matrix, rows, cols, fill = 0) {
  return Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => matrix[i]?.[j] ?? fill));
}

// api: {defaults(), compute(payload), random(payload)}, each resolving with {ok, body}.
export function createSandbox(root, api) {
  const $ = (testid) => root.querySelector(`[data-testid="${testid}"]`);
  const sizes = { rows: $("sandbox-rows"), in: $("sandbox-in"), out: $("sandbox-out") };
  const errorBox = $("sandbox-error");
  let maxSize = 8;
  let maxAbs = 1e6; // the server's bound on every number (GET /api/linear's max_abs)
  let defaults = null;
  let values = null; // {x: [[]], weight: [[]], bias: []} as typed (text)
  let sequence = 0;
  let timer = null;

  const shapeText = (dims) => `(${dims.join(", ")}${dims.length === 1 ? "," : ""})`;

  function showError(message) {
    errorBox.textContent = message || "";
    errorBox.hidden = !message;
    root.classList.toggle("has-error", Boolean(message));
  }

  function cell(name, path, text) {
    const input = element("input", { type: "text", inputmode: "decimal", value: text,
      "aria-label": `${name}${path.map((p) => `[${p}]`).join("")}`, "data-cell": `${name}:${path.join(",")}` });
    input.addEventListener("input", () => {
      let target = values[name];
      for (const p of path.slice(0, -1)) target = target[p];
      target[path[path.length - 1]] = input.value;
      input.classList.toggle("invalid", parseNumber(input.value) === null);
      schedule();
    });
    if (parseNumber(text) === null) input.classList.add("invalid");
    return input;
  }

  function renderGrids() {
    const { x, weight, bias } = values;
    const rowsOf = (name, matrix) => matrix.map((row, i) => element("tr", {},
      row.map((v, j) => element("td", {}, cell(name, [i, j], v)))));
    $("sandbox-x").replaceChildren(...rowsOf("x", x));
    $("sandbox-w").replaceChildren(...rowsOf("weight", weight));
    $("sandbox-b").replaceChildren(...bias.map((v, j) => element("tr", {}, element("td", {}, cell("bias", [j], v)))));
    const n = x.length; const inF = weight[0].length; const outF = weight.length;
    $("sandbox-x-shape").textContent = shapeText([n, inF]);
    $("sandbox-w-shape").textContent = `${shapeText([outF, inF])} = (out, in)`;
    $("sandbox-b-shape").textContent = shapeText([outF]);
    $("sandbox-y-shape").textContent = shapeText([n, outF]);
    $("sandbox-signature").textContent = `nn.Linear(${inF}, ${outF})`;
    sizes.rows.value = String(n); sizes.in.value = String(inF); sizes.out.value = String(outF);
  }

  function numbers() {
    const bad = [];
    const read = (name, path, text) => {
      const v = parseNumber(String(text));
      const where = `${name}${path.map((p) => `[${p}]`).join("")}`;
      if (v === null) bad.push(`${where} ${whyNot(text, maxAbs)}`);
      else if (Math.abs(v) > maxAbs) bad.push(`${where} is ${String(text).trim()}, outside the sandbox's range: write ${allowed(maxAbs)}`);
      return v;
    };
    const payload = {
      x: values.x.map((row, i) => row.map((t, j) => read("x", [i, j], t))),
      weight: values.weight.map((row, i) => row.map((t, j) => read("weight", [i, j], t))),
      bias: values.bias.map((t, j) => read("bias", [j], t)),
    };
    return { payload, bad };
  }

  function renderResult(result, x, weight, bias) {
    const y = result.y;
    const symbols = (i, j) => `y[${i},${j}] = ${x[i].map((_, k) => `x[${i},${k}]*W[${j},${k}]`).join(" + ")} + b[${j}]`;
    const numbers = (i, j, v) => `= ${x[i].map((xv, k) => `${term(xv)}*${term(weight[j][k])}`).join(" + ")} + ${term(bias[j])} = ${fixed(v)}`;
    const formulas = y.map((row, i) => row.map((v, j) => element("li", { "data-testid": `sandbox-formula-${i}-${j}` },
      code(symbols(i, j)), element("br"), code(`      ${numbers(i, j, v)}`))));
    $("sandbox-y").replaceChildren(...y.map((row, i) => element("tr", {}, row.map((v, j) => {
      // Each cell carries its formula: a mouse over it marks the written-out line below; a tap
      // marks that line alone (and stays, with nothing to leave on a touch screen).
      const cellNode = element("td", { "data-testid": `sandbox-y-${i}-${j}`, "data-value": String(v),
        title: `${symbols(i, j)}\n${numbers(i, j, v)}`, text: fixed(v) });
      cellNode.addEventListener("pointerenter", (event) => { if (event.pointerType === "mouse") formulas[i][j].classList.add("marked"); });
      cellNode.addEventListener("pointerleave", (event) => { if (event.pointerType === "mouse") formulas[i][j].classList.remove("marked"); });
      cellNode.addEventListener("pointerup", (event) => {
        if (event.pointerType === "mouse") return;
        for (const line of formulas.flat()) line.classList.toggle("marked", line === formulas[i][j]);
      });
      return cellNode;
    }))));
    $("sandbox-formulas").replaceChildren(...formulas.flat());
    $("sandbox-printed").textContent = `>>> m = nn.Linear(${result.in_features}, ${result.out_features})\n>>> m(x)\n${result.printed}`;
  }

  async function compute() {
    const { payload, bad } = numbers();
    if (bad.length) { showError(bad.join("; ")); return; }
    const mine = ++sequence;
    let answer;
    try {
      answer = await api.compute(payload);
    } catch (err) {
      if (mine === sequence) showError(`could not reach the server: ${err.message}`);
      return;
    }
    if (mine !== sequence) return; // a newer edit is on its way
    if (!answer.ok) { showError(answer.body.error); return; }
    showError("");
    renderResult(answer.body, payload.x, payload.weight, payload.bias);
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(compute, DEBOUNCE_MS);
  }

  const asText = (matrix) => matrix.map((row) => (Array.isArray(row) ? row.map(String) : String(row)));

  function load(example) {
    values = { x: asText(example.x), weight: asText(example.weight), bias: asText(example.bias) };
    renderGrids();
    compute();
  }

  function onSize() {
    const want = (input) => Math.round(Number(input.value));
    const n = want(sizes.rows); const inF = want(sizes.in); const outF = want(sizes.out);
    if (![n, inF, outF].every((v) => Number.isInteger(v) && v >= 1 && v <= maxSize)) {
      showError(`sizes must be whole numbers from 1 to ${maxSize}`);
      return;
    }
    if (n === values.x.length && inF === values.weight[0].length && outF === values.weight.length) return;
    values = { x: resize(values.x, n, inF, "0"), weight: resize(values.weight, outF, inF, "0"),
               bias: resize([values.bias], 1, outF, "0")[0] };
    renderGrids();
    compute();
  }
  for (const input of Object.values(sizes)) input.addEventListener("change", onSize);

  $("sandbox-randomize").addEventListener("click", async () => {
    const inF = values.weight[0].length; const outF = values.weight.length;
    const answer = await api.random({ in_features: inF, out_features: outF });
    if (!answer.ok) { showError(answer.body.error); return; }
    values.weight = answer.body.weight.map((row) => row.map((v) => v.toFixed(4)));
    values.bias = answer.body.bias.map((v) => v.toFixed(4));
    $("sandbox-note").replaceChildren("W and b drawn as nn.Linear draws them: uniform within ±1/√in_features = ±",
      code(fixed(answer.body.bound)), ` (seed ${answer.body.seed}; shown and used to 4 decimals).`);
    renderGrids();
    compute();
  });
  $("sandbox-reset").addEventListener("click", () => { setNote(); load(defaults); });

  function setNote() {
    $("sandbox-note").replaceChildren("PyTorch prints 4 decimals; W and b here carry the 6 behind them (rounded first, ",
      code("y[0,1]"), " would come out −0.2958 instead of the printed −0.2959).");
  }

  return {
    async start() {
      const answer = await api.defaults();
      if (!answer.ok) { showError(answer.body.error); return; }
      maxSize = answer.body.max_size;
      maxAbs = answer.body.max_abs;
      for (const input of Object.values(sizes)) input.max = String(maxSize);
      defaults = answer.body.defaults;
      setNote();
      load(defaults);
    },
  };
}

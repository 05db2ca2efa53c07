// Words and numbers for people: one set of formatters for the whole page.
export const fixed = (value, digits = 4) => (Number.isFinite(value) ? value.toFixed(digits) : String(value));

// A number for a formula: negative numbers in brackets so "+ (-0.45)" reads right.
export const term = (value, digits = 4) => (value < 0 ? `(${fixed(value, digits)})` : fixed(value, digits));

export const thousands = (n) => n.toLocaleString("en-US");

// 0.934 -> "93.4%"; null -> "–".
export const percent = (x, digits = 1) => (x == null || !Number.isFinite(x) ? "–" : `${(100 * x).toFixed(digits)}%`);

// Two significant digits, exponent notation for the very small or large: scales and bins.
export function short(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e-2 && a < 1e3 ? v.toPrecision(2) : v.toExponential(1);
}

// "1 step", "3 steps".
export const megabytes = (bytes) => `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MB`;
export const plural = (n, word, words = `${word}s`) => `${thousands(n)} ${n === 1 ? word : words}`;

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 1) return "under a second";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

export const ACTIVATION_NAMES = { sigmoid: "sigmoid", relu: "ReLU", tanh: "tanh", leaky_relu: "leaky ReLU" };
export const ACTIVATION_CODE = { sigmoid: "F.sigmoid", relu: "F.relu", tanh: "torch.tanh", leaky_relu: "F.leaky_relu" };

// "784 → 256 sigmoid → 10": the layers; what the output is used for is describeTraining's.
export function describeArchitecture(config) {
  const hidden = config.hidden_sizes.map((n) => `${n} ${ACTIVATION_NAMES[config.activation]}`).join(" → ");
  return `784 → ${hidden} → 10`;
}

// What is trained and what predicts, for the output setting in force.
export function describeTraining(config) {
  const trains = config.output === "softmax"
    ? "the loss is given forward(x) as written, softmax probabilities (so softmax runs twice)"
    : "the loss is given the logits self.output(…), before the softmax";
  return { trains: `Trains: CrossEntropyLoss, ${trains}.`, predicts: "Predicts: forward(x), the softmax of the 10 logits." };
}

export function describeDataset(dataset, device) {
  const splits = Object.entries(dataset.splits).filter(([, n]) => n > 0)
    .map(([name, n]) => `${n.toLocaleString()} ${name}`).join(", ");
  const fallback = dataset.fallback_reason ? ` (full MNIST unavailable: ${dataset.fallback_reason})` : "";
  return `Data: ${dataset.name}: ${dataset.source}; ${splits}${fallback}. Training on ${device}.`;
}

// 1 -> "1st", 2 -> "2nd", 11 -> "11th", 23 -> "23rd".
export function ordinal(n) {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  const suffix = teen ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
  return `${thousands(n)}${suffix}`;
}

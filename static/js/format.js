// Words and numbers for people.
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 1) return "under a second";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

const ACTIVATION_NAMES = { sigmoid: "sigmoid", relu: "ReLU", tanh: "tanh", leaky_relu: "leaky ReLU" };

export function describeArchitecture(config) {
  const hidden = config.hidden_sizes.map((n) => `${n} ${ACTIVATION_NAMES[config.activation]}`).join(" → ");
  return `784 → ${hidden} → 10 softmax`;
}

export function describeDataset(dataset, device) {
  const splits = Object.entries(dataset.splits).filter(([, n]) => n > 0)
    .map(([name, n]) => `${n.toLocaleString()} ${name}`).join(", ");
  const fallback = dataset.fallback_reason ? ` (full MNIST unavailable: ${dataset.fallback_reason})` : "";
  return `Data: ${dataset.name}: ${dataset.source}; ${splits}${fallback}. Training on ${device}.`;
}

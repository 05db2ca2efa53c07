// The setup in the page's address, readable: ?hidden=256,128&act=relu&out=logits&opt=adam&lr=0.001...
// The same keys as server/web/setup_link.py, which reads a link back (setup:link): keys
// missing from a link take the defaults, unknown keys are ignored (and kept in the address,
// e.g. ?token=), out-of-bounds values are refused with the link's own key in the message.
export const LINK_KEYS = {
  hidden: "hidden_sizes", act: "activation", out: "output", opt: "optimizer", lr: "lr",
  mom: "momentum", wd: "weight_decay", batch: "batch_size", epochs: "epochs", seed: "seed",
};
export const SETUP_FIELDS = Object.values(LINK_KEYS);

const FIELD_NAMES = {
  hidden_sizes: "hidden layers", activation: "activation", output: "output", optimizer: "optimizer",
  lr: "learning rate", momentum: "momentum", weight_decay: "weight decay", batch_size: "batch size",
  epochs: "epochs", seed: "seed",
};

const valueText = (field, value) => (field === "hidden_sizes" ? value.join(",") : String(value));

// Only the setup fields (not the pace of the shared run, which is how fast people watch).
export function setupOf(config) {
  return Object.fromEntries(SETUP_FIELDS.map((field) => [field, config[field]]));
}

export function sameSetup(a, b) {
  return SETUP_FIELDS.every((field) => valueText(field, a[field]) === valueText(field, b[field]));
}

// "learning rate 0.01 → 0.001; hidden layers 256 → 128,64": what applying a link would change.
export function describeDifferences(from, to) {
  return SETUP_FIELDS.filter((field) => valueText(field, from[field]) !== valueText(field, to[field]))
    .map((field) => `${FIELD_NAMES[field]} ${valueText(field, from[field])} → ${valueText(field, to[field])}`)
    .join("; ");
}

export function setupQuery(config) {
  return Object.entries(LINK_KEYS).map(([key, field]) => `${key}=${encodeURIComponent(valueText(field, config[field])).replace(/%2C/g, ",")}`).join("&");
}

export function hasSetupKeys(search) {
  const params = new URLSearchParams(search);
  return Object.keys(LINK_KEYS).some((key) => params.has(key));
}

// Ask the server what a link means: {config, ignored} or {error}. Over the socket, so a
// refused link is an answer in words, not a failed page load.
export async function readLink(search, request) {
  try {
    const answer = await request("setup:link", { query: search });
    return answer.ok ? { config: answer.config, ignored: answer.ignored } : { error: answer.error };
  } catch (err) {
    return { error: `could not read the link's setup (${err.message})` };
  }
}

// The address with `config` as its setup; other parameters (e.g. ?token=) stay as they were.
export function urlWithSetup(config, href = window.location.href) {
  const url = new URL(href);
  const others = new URLSearchParams(url.search);
  for (const key of Object.keys(LINK_KEYS)) others.delete(key);
  const rest = others.toString();
  return `${url.origin}${url.pathname}?${setupQuery(config)}${rest ? `&${rest}` : ""}${url.hash}`;
}

export function writeSetupToUrl(config) {
  const next = urlWithSetup(config);
  if (next !== window.location.href) window.history.replaceState(null, "", next);
  return next;
}

// Building DOM nodes in one call, and finding the page's parts by their data-testid.
const ATTRIBUTES = ["title", "type", "role", "tabindex", "value", "inputmode", "for", "id", "href", "download", "scope"];

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value == null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("data-") || name.startsWith("aria-") || ATTRIBUTES.includes(name)) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const code = (text) => element("code", { text });

// The element with this data-testid (within `root`, the document by default).
export const byTestId = (testid, root = document) => root.querySelector(`[data-testid="${testid}"]`);

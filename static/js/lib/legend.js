// The one legend of signed pictures and charts: the palette's gradient with its scale, in the
// same words everywhere.
import { element } from "./dom.js";
import { CSS_GRADIENT } from "./palette.js";
import { short } from "./format.js";

export const LEGEND_WORDS = (target) => `red: raises ${target}; blue: lowers it; white: 0`;

export function signedLegend(limit, target) {
  const bar = element("span", { className: "legend-bar", "aria-hidden": "true" });
  bar.style.background = CSS_GRADIENT;
  return element("div", { className: "signed-legend", "data-testid": "signed-legend", "data-limit": String(limit) },
    element("span", { className: "legend-scale" }, element("span", { text: `−${short(limit)}` }), bar,
      element("span", { text: `+${short(limit)}` })),
    element("span", { className: "legend-words", text: LEGEND_WORDS(target) }));
}

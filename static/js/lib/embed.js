// The page inside another page's frame (?embed=1, e.g. a notebook cell's output of watch()):
// one run's read-only view, compact. The server frames only that (server/web/framing.py) and
// gives its connection no control (it says `embed` in its connect auth); the page shows no
// controls (html.embed in page.css) and keeps no viewer secret (lib/viewer.js).
export const embedded = () => new URLSearchParams(window.location.search).get("embed") === "1";

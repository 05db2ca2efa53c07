// Feature module (placeholder until the feature lands). Gets the page context from main.js.
export default function init(context) {}

// Keep the weights: upload a .pt back (downloads and the Python export are plain links).
export const MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024; // the server's limit too

// The control token (if the page was opened with ?token=) goes along, as on the socket.
function controlHeaders() {
  const token = new URLSearchParams(window.location.search).get("token");
  return token ? { "X-Control-Token": token } : {};
}

export function createCheckpointView({ fileInput, statusElement, notify }) {
  function say(text, kind) {
    statusElement.textContent = text;
    statusElement.dataset.kind = kind;
  }

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    fileInput.value = ""; // choosing the same file again uploads it again
    if (!file) return;
    if (file.size > MAX_CHECKPOINT_BYTES) {
      say(`${file.name} is too big (${file.size.toLocaleString()} bytes; the limit is ${MAX_CHECKPOINT_BYTES.toLocaleString()}). Nothing was changed.`, "error");
      return;
    }
    say(`Uploading ${file.name}…`, "info");
    try {
      const response = await fetch("/api/checkpoint", {
        method: "POST", body: file,
        headers: { "Content-Type": "application/octet-stream", Accept: "application/json", ...controlHeaders() },
      });
      const body = await response.json();
      if (response.ok) {
        say(`${file.name}: ${body.message}`, "ok");
        notify(`Loaded ${file.name}: ${body.message}`, "info");
      } else {
        say(`${file.name}: ${body.error}`, "error");
      }
    } catch (err) {
      say(`Uploading ${file.name} failed: ${err.message}`, "error");
    }
  });

  return { say };
}

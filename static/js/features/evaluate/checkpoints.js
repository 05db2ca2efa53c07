// Keep the weights: upload a .pt back (downloads and the Python export are plain links). The
// upload goes through lib/http.js, which carries the control token and the viewer secret like
// every HTTP request, to the run the page is on (uploadPath).
import { upload } from "../../lib/http.js";

export const MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024; // the server's limit too

export function createCheckpointView({ fileInput, statusElement, notice, uploadPath = () => "/api/checkpoint" }) {
  function say(text, kind) {
    statusElement.textContent = text;
    statusElement.dataset.kind = kind;
    // A refusal is said where the person is looking: here, beside the button, at once.
    statusElement.setAttribute("role", kind === "error" ? "alert" : "status");
  }
  let loadedNotice = null; // the "Loaded ..." notice of the last good upload

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    fileInput.value = ""; // choosing the same file again uploads it again
    if (!file) return;
    const failed = (text) => {
      say(text, "error");
      if (loadedNotice) { notice.clear(loadedNotice); loadedNotice = null; } // it no longer says what holds
    };
    if (file.size > MAX_CHECKPOINT_BYTES) {
      failed(`${file.name} is too big (${file.size.toLocaleString()} bytes; the limit is ${MAX_CHECKPOINT_BYTES.toLocaleString()}). Nothing was changed.`);
      return;
    }
    say(`Uploading ${file.name}…`, "info");
    try {
      const answer = await upload(uploadPath(), file);
      if (answer.ok) {
        say(`${file.name}: ${answer.body.message}`, "ok");
        loadedNotice = `Loaded ${file.name}: ${answer.body.message}`;
        notice.show(loadedNotice, "info");
      } else {
        failed(`${file.name} was not loaded: ${answer.body.error}`);
      }
    } catch (err) {
      failed(`Uploading ${file.name} failed: ${err.message}`);
    }
  });

  return {
    // A run this page may not control: its weights can be downloaded, not replaced.
    setReadOnly(readOnly) {
      fileInput.disabled = readOnly;
      fileInput.title = readOnly ? "Only whoever controls this run can load weights into it" : "";
    },
  };
}

// Paints the mosaic and encodes it as a PNG data: URI (what Plotly's image trace takes) off the
// page's main thread, which stays free for drawing and the other views.
import { mosaicSize, paintMosaic } from "./mosaic.js";

self.onmessage = async ({ data: job }) => {
  try {
    const { width, height } = mosaicSize(job.n, job.columns);
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext("2d");
    const image = context.createImageData(width, height);
    paintMosaic(image.data, job);
    context.putImageData(image, 0, 0);
    const blob = await canvas.convertToBlob({ type: "image/png" });
    const url = new FileReaderSync().readAsDataURL(blob);
    self.postMessage({ id: job.id, url });
  } catch (err) {
    self.postMessage({ id: job.id, error: String(err) });
  }
};

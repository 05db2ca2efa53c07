// Paints the mosaic off the page's main thread, which stays free for drawing and the other
// views; the picture goes back as an ImageBitmap (transferred, not copied).
import { mosaicSize, paintMosaic } from "./mosaic.js";

self.onmessage = ({ data: job }) => {
  try {
    const { width, height } = mosaicSize(job.n, job.columns);
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext("2d");
    const image = context.createImageData(width, height);
    paintMosaic(image.data, job);
    context.putImageData(image, 0, 0);
    const bitmap = canvas.transferToImageBitmap();
    self.postMessage({ id: job.id, bitmap }, [bitmap]);
  } catch (err) {
    self.postMessage({ id: job.id, error: String(err) });
  }
};

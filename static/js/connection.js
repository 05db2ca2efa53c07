// Transport only: one Socket.IO connection, requests answered by acknowledgement.
import { controlToken } from "./lib/access.js";
import { manager } from "./socket-early.js";
import { SHARED, runInAddress, viewerSecret } from "./lib/viewer.js";
import { embedded } from "./lib/embed.js";

const REQUEST_TIMEOUT_MS = 10000;

// A request that could not reach the server (not a refusal): the page says so as a
// connection notice, which goes when the connection is back.
export class TransportError extends Error {}

export function connect({ onStatus }) {
  // The transport is already open or opening (socket-early.js); the session starts now.
  // auth: the control token from the page URL, for viewers on other machines (lib/access.js);
  // no live views and no evaluation/runs broadcasts until the views in sight ask for them
  // (inside:subscribe, broadcasts:subscribe): a page gets only what it shows. viewer: who this
  // browser is (its own runs stay its own); run: the run the address names, read at every
  // (re)connection, so a page that reconnects comes back to the run it was on.
  const socket = manager.socket("/", {
    auth: (give) => {
      const run = runInAddress();
      give({ token: controlToken(), streams: [], broadcasts: [], viewer: viewerSecret(),
        ...(run === SHARED ? {} : { run }), ...(embedded() ? { embed: true } : {}) });
    } });
  // Requests waiting for their answer: a dropped connection never brings it, so they are told
  // at once (not after the timeout, whose words would then replace the connection's).
  const waiting = new Set();
  socket.on("connect", () => onStatus("connected"));
  socket.on("disconnect", () => {
    onStatus("disconnected");
    for (const lost of [...waiting]) lost();
  });
  socket.io.on("reconnect_attempt", () => onStatus("connecting"));

  return {
    socket,
    on: (event, handler) => socket.on(event, handler),
    // Resolves with the server's answer ({ok, ...}); rejects (TransportError) only when the
    // request could not be delivered or answered.
    request(event, payload) {
      return new Promise((resolve, reject) => {
        if (!socket.connected) {
          reject(new TransportError("not connected to the server, so nothing was sent: try again once the badge says connected"));
          return;
        }
        const lost = () => {
          waiting.delete(lost);
          reject(new TransportError(`Lost the connection to the server before it answered ${event}; trying again…`));
        };
        waiting.add(lost);
        socket.timeout(REQUEST_TIMEOUT_MS).emit(event, payload, (err, answer) => {
          if (!waiting.delete(lost)) return;  // already told: the connection dropped
          if (err) reject(new TransportError(`the server did not answer ${event} in time`));
          else resolve(answer);
        });
      });
    },
  };
}

// Transport only: one Socket.IO connection, requests answered by acknowledgement.
import { io } from "/vendor/socket.io.esm.min.js";
import { controlToken } from "./access.js";

const REQUEST_TIMEOUT_MS = 10000;

export function connect({ onStatus }) {
  // Websocket first: the server runs simple-websocket, long-polling is only a fallback.
  // auth: the control token from the page URL, for viewers on other machines (access.js).
  const socket = io({ transports: ["websocket", "polling"], auth: { token: controlToken() } });
  socket.on("connect", () => onStatus("connected"));
  socket.on("disconnect", () => onStatus("disconnected"));
  socket.io.on("reconnect_attempt", () => onStatus("connecting"));

  return {
    socket,
    on: (event, handler) => socket.on(event, handler),
    // Resolves with the server's answer ({ok, ...}); rejects only on transport failure.
    request(event, payload) {
      return new Promise((resolve, reject) => {
        if (!socket.connected) {
          reject(new Error("not connected to the server"));
          return;
        }
        socket.timeout(REQUEST_TIMEOUT_MS).emit(event, payload, (err, answer) => {
          if (err) reject(new Error(`the server did not answer ${event} in time`));
          else resolve(answer);
        });
      });
    },
  };
}

// The websocket to the server, opened as soon as the page is parsed (an async module of its own
// in index.html): its handshake is on the network while the page's other modules load and
// Plotly runs, instead of after them. Only the transport opens here; the Socket.IO session
// (which makes the server send the run's state) starts in connection.js, once the page's
// handlers are there to take what it sends.
import { Manager } from "/vendor/socket.io.esm.min.js";

// Websocket first: the server runs simple-websocket, long-polling is only a fallback.
export const manager = new Manager(location.origin, { transports: ["websocket", "polling"] });

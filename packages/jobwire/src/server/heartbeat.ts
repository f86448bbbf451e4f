/**
 * Heartbeats for long-lived WebSockets: a ping every interval; a peer that missed two pongs in a
 * row is dropped, so dead connections do not hold subscriptions, while idle live ones stay.
 * @module
 */
import type { WebSocket } from 'ws';

/** Ping interval. */
export const HEARTBEAT_MS = 15_000;

/** Starts pinging `ws`; returns a function that stops it. */
export function heartbeat(ws: WebSocket, intervalMs = HEARTBEAT_MS): () => void {
  let missed = 0;
  const onPong = (): void => {
    missed = 0;
  };
  ws.on('pong', onPong);
  const timer = setInterval(() => {
    if (missed >= 2) {
      ws.terminate();
      return;
    }
    missed++;
    try {
      ws.ping();
    } catch {
      // closing: nothing to do
    }
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    ws.off('pong', onPong);
  };
}

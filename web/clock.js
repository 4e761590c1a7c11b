// clock.js: the registry host's clock, as this page estimates it. Entries' expires_at are Unix
// seconds on the host's clock, which may differ from the browser's. A long-poll is answered
// the moment an event happens, so an event's timestamp minus the time its answer arrived is
// the offset between the clocks, short by the network's latency only. The estimate is the
// largest of the recent ones (the least delayed); recent only, so that a host whose clock
// was stepped back is followed.

const KEPT = 20;
const recent = []; // host minus browser, in seconds, one per event answered at once

export function hostNow() {
  return Date.now() / 1000 + offset();
}

function offset() {
  return recent.length ? Math.max(...recent) : 0;
}

// timestamp: an event's (host seconds) that happened after `sentAt`, answered at
// `receivedAt` (browser milliseconds).
export function observe(timestamp, sentAt, receivedAt) {
  if (typeof timestamp !== "number") return;
  // an event older than the request was not answered the moment it happened
  if (timestamp < sentAt / 1000 + offset() - 1) return;
  recent.push(timestamp - receivedAt / 1000);
  if (recent.length > KEPT) recent.shift();
}

// clock.js: the registry host's clock, as this page estimates it. Entries' expires_at are Unix
// seconds on the host's clock, which may differ from the browser's. An event that arrives on a
// long-poll asked with the newest index happened between the request and its answer, so its
// timestamp bounds the offset from both sides; the estimate is the middle of the bounds.

let lowest = -Infinity;  // host minus browser, in seconds, at least this
let highest = Infinity;  // and at most this

export function hostNow() {
  return Date.now() / 1000 + offset();
}

function offset() {
  if (lowest === -Infinity || highest === Infinity || lowest > highest) return 0;
  return (lowest + highest) / 2;
}

// timestamp: an event's (host seconds) that happened after `sentAt` and before `receivedAt`
// (browser milliseconds).
export function observe(timestamp, sentAt, receivedAt) {
  if (typeof timestamp !== "number") return;
  lowest = Math.max(lowest, timestamp - receivedAt / 1000);
  highest = Math.min(highest, timestamp - sentAt / 1000);
  // bounds that cross mean the host's clock stepped: start again from this observation
  if (lowest > highest) {
    lowest = timestamp - receivedAt / 1000;
    highest = timestamp - sentAt / 1000;
  }
}

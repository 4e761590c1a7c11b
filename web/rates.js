// rates.js: this host's channel counters. GET /channels every 2 s gives each channel's held
// messages and writes since the host started; the difference between two polls is the write
// rate, per channel for the table and summed for the chart.

import { getJSON, sleep, Backoff, isAbort } from "./api.js";

const POLL_MS = 2000;

// onSample({ stats: Map id -> {held, rate, endpoint}, total: writes/s or null, at: ms });
// onUnavailable(message): the host does not answer GET /channels (an older host, or an error)
export async function followRates({ signal, onSample, onUnavailable, onNeedToken }) {
  const backoff = new Backoff(POLL_MS, 60000);
  let previous = null; // { at, writes: Map id -> writes }
  while (!signal.aborted) {
    const startedAt = Date.now();
    try {
      const answer = await getJSON("/channels", signal);
      const at = Date.now();
      const sample = rateSample(answer.channels || [], previous, at);
      previous = { at, writes: sample.writes };
      onSample(sample);
      backoff.reset();
      await sleep(Math.max(0, POLL_MS - (Date.now() - startedAt)), signal);
    } catch (error) {
      if (signal.aborted || isAbort(error)) return;
      if (error.status === 401) return onNeedToken(error);
      previous = null; // a gap: the next rate starts afresh
      onUnavailable(error.status === 404 ? "this host does not report its channels (GET /channels)" : error.message);
      await sleep(backoff.next(), signal);
    }
  }
}

function rateSample(channels, previous, at) {
  const stats = new Map();
  const writes = new Map();
  const seconds = previous ? (at - previous.at) / 1000 : 0;
  let total = previous ? 0 : null;
  for (const channel of channels) {
    writes.set(channel.id, channel.writes);
    const before = previous?.writes.get(channel.id);
    // a channel new since the last poll, or a counter that went back (a new host), has no rate yet
    const delta = before === undefined || channel.writes < before ? null : channel.writes - before;
    const rate = delta === null || seconds <= 0 ? null : delta / seconds;
    if (rate !== null && total !== null) total += rate;
    stats.set(channel.id, { held: channel.held, rate, endpoint: channel.endpoint, lastSeq: channel.last_seq, kind: channel.kind });
  }
  return { stats, writes, total, at };
}

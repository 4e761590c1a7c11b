// registry.js: keeps the tables in step with the registry. It lists every page of systems and
// channels, then follows /registry/events with long-polls from the index it had reached, so a
// registration shows up, a refresh moves expires_at, and an entry deregistered or expired goes,
// all without a reload. Errors back off; 401/403 hand over to the token dialog.

import { getJSON, listAll, sleep, Backoff, isAbort } from "./api.js";
import { observe } from "./clock.js";

const WAIT_SECONDS = 25;
const PAGE = 1000;
const HISTORY_PAGES = 5; // at start, the feed replays at most this many pages of past events
const NEWEST = Number.MAX_SAFE_INTEGER; // an index past the newest: answered at once with it

// tables: { system: RegistryTable, channel: RegistryTable }; feed: EventFeed;
// setStatus(state); onNeedToken(error)
export async function followRegistry({ signal, tables, feed, setStatus, onNeedToken }) {
  const backoff = new Backoff(1000, 30000);
  let index = null;
  while (!signal.aborted) {
    try {
      if (index === null) index = await replayHistory(signal, tables, feed);
      await loadLists(signal, tables);
      setStatus("live");
      backoff.reset();
      index = await pollEvents(signal, index, tables, feed);
      // the registry restarted (its index went back): list again and follow it from its start
    } catch (error) {
      if (signal.aborted || isAbort(error)) return;
      if (error.needsToken) {
        setStatus("needs a token");
        onNeedToken(error);
        return; // a new token starts everything again
      }
      setStatus("reconnecting…");
      if (backoff.delay === 0) feed.note(`registry: ${error.message}; retrying`); // once an outage
      await sleep(backoff.next(), signal);
    }
  }
}

async function loadLists(signal, tables) {
  const [systems, channels] = await Promise.all([
    listAll("/registry/systems", "system_id", signal),
    listAll("/registry/channels", "id", signal),
  ]);
  tables.system.replaceAll(systems);
  tables.channel.replaceAll(channels);
}

// The events the registry still holds, for the feed and for who registered what; returns the
// index to follow from.
async function replayHistory(signal, tables, feed) {
  let index = 0;
  for (let page = 0; page < HISTORY_PAGES; page++) {
    const answer = await getJSON(`/registry/events?index=${index}&limit=${PAGE}&wait=0`, signal);
    for (const event of answer.events) {
      feed.add(event);
      const gone = event.event === "deregistered" || event.event === "expired";
      tables[event.kind]?.noteRegistrant(event.id, gone ? null : event.registrant);
    }
    index = answer.index;
    if (answer.events.length < PAGE) return index;
  }
  // more history than the feed keeps: skip to the newest
  const answer = await getJSON(`/registry/events?index=${NEWEST}&wait=0`, signal);
  return answer.index;
}

// Long-polls until the registry's index goes back (it restarted); returns the index to go on
// from then (0: everything the new registry has).
async function pollEvents(signal, index, tables, feed) {
  for (;;) {
    const sentAt = Date.now();
    const answer = await getJSON(`/registry/events?index=${index}&limit=${PAGE}&wait=${WAIT_SECONDS}`, signal);
    const receivedAt = Date.now();
    if (answer.index < index) {
      feed.note("registry restarted: listing again");
      return 0;
    }
    for (const event of answer.events) {
      observe(event.timestamp, sentAt, receivedAt);
      apply(event, tables);
      feed.add(event);
    }
    index = answer.index;
  }
}

function apply(event, tables) {
  const table = tables[event.kind];
  if (!table) return;
  switch (event.event) {
    case "registered":
    case "refreshed":
    case "replaced":
      if (event.entry) table.upsert(event.entry, event.registrant);
      break;
    case "deregistered":
    case "expired":
      table.remove(event.id);
      break;
  }
}

const FEED_MAX = 200;

// The events feed: ol#events, newest first, "<event> <kind> <id>" per item (its time is shown
// by CSS from data-time, so the item's text stays exactly that), at most FEED_MAX kept.
export class EventFeed {
  constructor(list) {
    this.list = list;
  }

  add(event) {
    const item = document.createElement("li");
    item.textContent = `${event.event} ${event.kind} ${event.id}`;
    item.dataset.event = event.event;
    if (typeof event.timestamp === "number") item.dataset.time = timeOfDay(event.timestamp);
    if (event.registrant) item.title = `registrant ${event.registrant}`;
    this.prepend(item);
  }

  // A line of the page's own (connection trouble), told apart from the registry's events.
  note(text) {
    const item = document.createElement("li");
    item.className = "note";
    item.textContent = text;
    item.dataset.time = timeOfDay(Date.now() / 1000);
    this.prepend(item);
  }

  prepend(item) {
    this.list.prepend(item);
    while (this.list.children.length > FEED_MAX) this.list.lastElementChild.remove();
  }
}

export function timeOfDay(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

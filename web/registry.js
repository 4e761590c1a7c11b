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
  // where the page is in the registry's events: the index to ask after, and the timestamp of
  // the event at that index (to recognise a registry that restarted and counted up again)
  let position = null;
  let resuming = false; // after an error: the registry may have restarted meanwhile
  while (!signal.aborted) {
    try {
      if (position === null) position = await replayHistory(signal, tables, feed);
      else if (resuming && (await restarted(signal, position))) {
        feed.note("registry restarted: listing again");
        position = { index: 0 }; // follow it from its start
      }
      resuming = false;
      await loadLists(signal, tables);
      setStatus("live");
      backoff.reset();
      await pollEvents(signal, position, tables, feed);
      // the registry restarted (its index went back): list again and follow it from its start
      position = { index: 0 };
    } catch (error) {
      if (signal.aborted || isAbort(error)) return;
      if (error.needsToken) {
        setStatus("needs a token");
        onNeedToken(error);
        return; // a new token starts everything again
      }
      resuming = true;
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
// position to follow from.
async function replayHistory(signal, tables, feed) {
  feed.busy(true); // the past events are not news: screen readers need not read them all out
  try {
    return await replayPages(signal, tables, feed);
  } finally {
    feed.busy(false);
  }
}

async function replayPages(signal, tables, feed) {
  const position = { index: 0 };
  for (let page = 0; page < HISTORY_PAGES; page++) {
    const answer = await getJSON(`/registry/events?index=${position.index}&limit=${PAGE}&wait=0`, signal);
    for (const event of answer.events) {
      feed.add(event);
      const gone = event.event === "deregistered" || event.event === "expired";
      tables[event.kind]?.noteRegistrant(event.id, gone ? null : event.registrant);
    }
    advance(position, answer);
    if (answer.events.length < PAGE) return position;
  }
  return { index: await newestIndex(signal) }; // more history than the feed keeps: skip to the newest
}

function advance(position, answer) {
  if (answer.index === position.index) return; // nothing new (a long-poll that timed out)
  const last = answer.events[answer.events.length - 1];
  // the index also moves past events this token may not see: then the page knows no timestamp
  position.timestamp = last && last.index === answer.index ? last.timestamp : undefined;
  position.index = answer.index;
}

// Whether the registry restarted while the page could not reach it: its newest index is
// behind the page's, or the event at the page's index is another one than the page saw.
async function restarted(signal, position) {
  const newest = await newestIndex(signal);
  if (newest < position.index) return true;
  if (position.index === 0 || position.timestamp === undefined) return false;
  const answer = await getJSON(`/registry/events?index=${position.index - 1}&limit=1&wait=0`, signal);
  const event = answer.events[0];
  // no such event any more (the registry let it go): no sign of a restart
  return event !== undefined && event.index === position.index && event.timestamp !== position.timestamp;
}

async function newestIndex(signal) {
  const answer = await getJSON(`/registry/events?index=${NEWEST}&wait=0`, signal);
  return answer.index;
}

// Long-polls, moving `position` on, until the registry's index goes back (it restarted).
async function pollEvents(signal, position, tables, feed) {
  for (;;) {
    const sentAt = Date.now();
    const query = `index=${position.index}&limit=${PAGE}&wait=${WAIT_SECONDS}`;
    const answer = await getJSON(`/registry/events?${query}`, signal);
    const receivedAt = Date.now();
    if (answer.index < position.index) {
      feed.note("registry restarted: listing again");
      return;
    }
    for (const event of answer.events) {
      observe(event.timestamp, sentAt, receivedAt);
      apply(event, tables);
      feed.add(event);
    }
    advance(position, answer);
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

  busy(on) {
    this.list.setAttribute("aria-busy", on ? "true" : "false");
  }

  prepend(item) {
    this.list.prepend(item);
    while (this.list.children.length > FEED_MAX) this.list.lastElementChild.remove();
  }
}

export function timeOfDay(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

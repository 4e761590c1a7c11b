// channel-view.js: section#channel-view, the last messages of one channel, newest first, kept
// live by long-polls with after=<the last seq shown>. Only this host's channels can be read
// from this page (it talks to its own host only); a work queue's messages are claimed by its
// workers, so the view says so instead of reading (a read would be refused with 400).

import { getJSON, sleep, Backoff, isAbort } from "./api.js";
import { timeOfDay } from "./registry.js";

const SHOWN = 50;       // messages kept in the view
const WAIT_SECONDS = 25;
const WORK_QUEUE = "This channel is a work queue: messages of a work queue are claimed, not browsed (its workers take each one).";
const READER = "dashboard"; // the cursor this page reads with (?reader=), apart from the caller's own

export class ChannelView {
  constructor(section, onNeedToken) {
    this.section = section;
    this.heading = section.querySelector("h2");
    this.status = section.querySelector("#channel-view-status");
    this.list = section.querySelector("#messages");
    this.onNeedToken = onNeedToken;
    this.controller = null;
    this.opener = null;
    this.channel = null;
    section.querySelector("#close-view").addEventListener("click", () => this.close());
  }

  get isOpen() {
    return !this.section.hidden;
  }

  // channel: { id, name, kind, endpoint, local (served by this host), lastSeq (or null) }
  open(channel, opener) {
    this.opener = opener || null;
    this.channel = channel;
    this.heading.textContent = channel.name && channel.name !== channel.id
      ? `Channel ${channel.name} (${channel.id})`
      : `Channel ${channel.id}`;
    this.section.hidden = false;
    this.heading.focus();
    this.section.scrollIntoView({ block: "nearest" });
    this.restart();
  }

  // (again) from the start, as after a new token
  restart() {
    if (!this.isOpen || !this.channel) return;
    this.controller?.abort();
    this.controller = new AbortController();
    this.list.replaceChildren();
    this.follow(this.channel, this.controller.signal);
  }

  // stops reading but stays open (the token is being asked for; restart() goes on)
  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  close() {
    if (!this.isOpen) return;
    this.controller?.abort();
    this.controller = null;
    this.section.hidden = true;
    this.list.replaceChildren();
    this.channel = null;
    // back where the reader was, when that button is still there
    if (this.opener?.isConnected) this.opener.focus();
    this.opener = null;
  }

  async follow(channel, signal) {
    if (channel.kind === "work_queue") return this.say(WORK_QUEUE);
    if (!channel.local) {
      return this.sayElsewhere(channel);
    }
    const backoff = new Backoff(1000, 30000);
    let after = channel.lastSeq ? Math.max(0, channel.lastSeq - SHOWN) : 0;
    let epoch = null;
    let wait = 0; // catch up at once, then long-poll
    this.say("Loading…");
    while (!signal.aborted) {
      try {
        const query = new URLSearchParams({ after: String(after), limit: String(SHOWN), wait: String(wait), reader: READER });
        const answer = await getJSON(`/channels/${encodeURIComponent(channel.id)}?${query}`, signal);
        if (epoch !== null && answer.epoch !== epoch) {
          // the host restarted: its channel starts again from seq 1
          this.list.replaceChildren();
          after = 0;
        }
        epoch = answer.epoch;
        for (const message of answer.messages) {
          this.show(message);
          after = Math.max(after, message.seq);
        }
        const full = answer.messages.length >= SHOWN || answer.more;
        wait = full ? 0 : WAIT_SECONDS;
        backoff.reset();
        this.sayLive(answer.missed);
      } catch (error) {
        if (signal.aborted || isAbort(error)) return;
        if (error.status === 401) return this.onNeedToken(error);
        if (error.status === 400 && error.message.includes("work_queue")) return this.say(WORK_QUEUE);
        if (error.status === 404) return this.say(`This host does not serve channel '${channel.id}'.`);
        if (error.status === 400 || error.status === 403) return this.say(error.message);
        this.say(`Reconnecting: ${error.message}.`);
        await sleep(backoff.next(), signal);
      }
    }
  }

  show(message) {
    const item = document.createElement("li");
    item.dataset.seq = String(message.seq);
    const meta = document.createElement("p");
    meta.className = "message-meta";
    const parts = [`seq ${message.seq}`];
    if (typeof message.timestamp === "number") parts.push(timeOfDay(message.timestamp));
    if (message.sender_id) parts.push(`from ${message.sender_id}`);
    meta.textContent = parts.join(" · ");
    const data = document.createElement("pre");
    data.textContent = pretty(message.content?.data);
    item.append(meta, data);
    this.list.prepend(item);
    while (this.list.children.length > SHOWN) this.list.lastElementChild.remove();
  }

  sayLive(missed) {
    const count = this.list.children.length;
    let text = `Live: the last ${count} message${count === 1 ? "" : "s"}, newest first.`;
    if (missed) text += ` ${missed} older ones were dropped by the channel before they could be read.`;
    this.say(text);
  }

  sayElsewhere(channel) {
    this.status.replaceChildren();
    if (!channel.endpoint || !/^https?:\/\//.test(channel.endpoint)) {
      return this.say("This channel is served by another host.");
    }
    const link = document.createElement("a");
    link.href = new URL("/", channel.endpoint).href;
    link.textContent = `${channel.endpoint}'s dashboard`;
    this.status.append(`This channel is served by another host (${channel.endpoint}): this page reads only its own host. Follow it on `, link, ".");
  }

  say(text) {
    if (this.status.textContent !== text) this.status.textContent = text;
  }
}

function pretty(data) {
  if (data === undefined) return "(no data)";
  return JSON.stringify(data, null, 2);
}

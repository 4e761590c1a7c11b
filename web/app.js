// app.js: the dashboard's entry point. It wires the tables, the events feed, the chart and the
// channel view to their loops, and runs those loops in one session: a new token (or a
// forgotten one) ends the session and starts another, so nothing one token could see stays
// on the page for the next.

import { getJSON, storedToken, storeToken, forgetToken } from "./api.js";
import { hostNow } from "./clock.js";
import { RegistryTable } from "./tables.js";
import { followRegistry, EventFeed } from "./registry.js";
import { followRates } from "./rates.js";
import { RateChart } from "./chart.js";
import { ChannelView } from "./channel-view.js";

const $ = (selector) => document.querySelector(selector);

const statusElement = $("#status");
const dialog = $("#token-dialog");
const tokenInput = $("#token");
const forgetButton = $("#forget-token");

const view = new ChannelView($("#channel-view"), needToken);
const tables = {
  system: new RegistryTable("system", $("#systems"), $("#systems-count"), null),
  channel: new RegistryTable("channel", $("#channels"), $("#channels-count"), openChannel),
};
const feed = new EventFeed($("#events"));
const chart = new RateChart($("#rate-chart"), $("#rate-now"));

let session = null;      // AbortController of the running loops
let localChannels = null; // Map id -> this host's counters, from the last GET /channels

async function start() {
  session?.abort();
  session = new AbortController();
  const { signal } = session;
  forgetButton.hidden = !storedToken();
  tables.system.clear();
  tables.channel.clear();
  $("#events").replaceChildren();
  chart.clear();
  localChannels = null;
  setStatus("connecting…");
  if (!(await mayStart(signal))) return;
  followRegistry({ signal, tables, feed, setStatus, onNeedToken: needToken });
  followRates({
    signal,
    onSample(sample) {
      localChannels = sample.stats;
      tables.channel.setStats(sample.stats);
      chart.add(sample.at, sample.total);
    },
    onUnavailable(message) {
      localChannels = null;
      tables.channel.setStats(null);
      chart.unavailable(Date.now(), message);
    },
    onNeedToken: needToken,
  });
  view.restart();
}

// Whether the loops may start. GET /health answers without a credential, and with
// authentication on it then says only {"status": "ok"}: so a page without a token learns that
// it needs one before any request is refused (each refusal is an error in the browser's
// console), and a page with one tries it once.
async function mayStart(signal) {
  let health;
  try {
    health = await getJSON("/health", signal);
  } catch (error) {
    if (error.needsToken) {
      needToken(error); // a token the host refuses (403)
      return false;
    }
    return !signal.aborted; // a host in trouble: the loops report it and retry
  }
  $("#version").textContent = health.version ? `version ${health.version}` : "";
  if (!storedToken() && health.version === undefined) {
    needToken({ status: 401 });
    return false;
  }
  if (storedToken()) {
    // one request tries the token, rather than every loop at once
    try {
      await getJSON(`/registry/events?index=${Number.MAX_SAFE_INTEGER}&wait=0`, signal);
    } catch (error) {
      if (error.needsToken) {
        needToken(error);
        return false;
      }
    }
  }
  return !signal.aborted;
}

function setStatus(text) {
  statusElement.textContent = text;
  statusElement.dataset.state = text === "live" ? "live" : text === "needs a token" ? "token" : "waiting";
}

// The channel view for a row's id button: what the page knows of where the channel lives.
function openChannel(record, button) {
  const { entry } = record;
  const counters = localChannels?.get(entry.id);
  const local = counters
    ? !entry.endpoint || !counters.endpoint || counters.endpoint === entry.endpoint
    : !entry.endpoint || entry.endpoint === location.origin;
  view.open({
    id: entry.id,
    name: entry.name,
    kind: entry.kind || counters?.kind,
    endpoint: entry.endpoint,
    local,
    lastSeq: local && counters ? counters.lastSeq : null,
  }, button);
}

// Token -------------------------------------------------------------------------------

// Every loop stops until a token is given: asking again with the same one would be refused again.
function needToken(error) {
  session?.abort();
  view.stop();
  setStatus("needs a token");
  const reason = error.status === 403
    ? `The host refused the token: ${error.message}`
    : "This host asks for a Bearer token (a JWT or a static token). It is kept in this tab only.";
  $("#token-reason").textContent = reason;
  if (!dialog.open) {
    tokenInput.value = "";
    dialog.showModal();
  }
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) return;
  storeToken(token);
  tokenInput.value = "";
  dialog.close();
  start();
});

$("#token-cancel").addEventListener("click", () => dialog.close());

$("#set-token").addEventListener("click", () => {
  $("#token-reason").textContent = "Give a Bearer token (a JWT or a static token). It is kept in this tab only.";
  tokenInput.value = "";
  dialog.showModal();
});

forgetButton.addEventListener("click", () => {
  forgetToken();
  start();
  $("#set-token").focus(); // the button pressed is hidden now
});

// Filters -----------------------------------------------------------------------------

function applyFilters() {
  const value = (selector) => $(selector).value.trim().toLowerCase();
  const filters = {
    search: value("#search"),
    name: value("#filter-name"),
    visibility: value("#filter-visibility"),
    capability: value("#filter-capability"),
  };
  tables.system.setFilters(filters);
  tables.channel.setFilters(filters);
}

const filterForm = $("#filters");
filterForm.addEventListener("input", applyFilters);
filterForm.addEventListener("change", applyFilters);
filterForm.addEventListener("submit", (event) => event.preventDefault()); // Enter filters already
filterForm.addEventListener("reset", () => setTimeout(applyFilters)); // after the fields are reset

// Keyboard and clock ------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  // the dialog closes itself on Escape; otherwise Escape closes the channel view
  if (event.key === "Escape" && !dialog.open && view.isOpen) {
    event.preventDefault();
    view.close();
  }
});

function tick() {
  const now = hostNow();
  tables.system.tick(now);
  tables.channel.tick(now);
}

$("#host-name").textContent = location.host;
document.title = `sssn-host ${location.host}`;
setInterval(tick, 1000);
start();

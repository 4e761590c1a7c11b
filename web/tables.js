// tables.js: the systems and channels tables. Each holds the live registry entries of its kind,
// one row per entry (tr[data-id], cells named by class), updated in place so that focus and
// scroll survive updates. Text goes in with textContent only: entries are written by anyone who
// may register, and must never become markup.

import { hostNow } from "./clock.js";

const EXPIRING_SECONDS = 10;     // "expiring" below this many seconds left
const EXPIRED_GRACE_SECONDS = 1; // an expired row stays this long, then goes (the host purges
                                 // only every --maintenance seconds, so its event may be late)
const NONE = "—";

function systemCells(record) {
  const { entry } = record;
  const services = Array.isArray(entry.services) ? entry.services : [];
  return {
    id: entry.system_id,
    name: entry.system_name || "",
    services: services.map((s) => s.name).join(", ") || NONE,
    endpoint: entry.endpoint || NONE,
    owner: record.registrant || entry.registrant || entry.owner || NONE,
  };
}

function channelCells(record) {
  const { entry, stats } = record;
  return {
    name: entry.name || "",
    kind: entry.kind || NONE,
    visibility: entry.visibility || NONE,
    owner: entry.owner || record.registrant || entry.registrant || NONE,
    endpoint: entry.endpoint || NONE,
    count: stats ? String(stats.held) : NONE,
    rate: stats && stats.rate !== null ? `${stats.rate.toFixed(1)}/s` : NONE,
  };
}

const KINDS = {
  system: {
    idField: "system_id",
    columns: ["id", "name", "services", "endpoint", "ttl", "owner", "state"],
    cells: systemCells,
    name: (entry) => entry.system_name || "",
    noun: ["system", "systems"],
  },
  channel: {
    idField: "id",
    columns: ["id", "name", "kind", "visibility", "owner", "endpoint", "count", "rate", "ttl"],
    cells: channelCells,
    name: (entry) => entry.name || "",
    noun: ["channel", "channels"],
  },
};

export class RegistryTable {
  // kind: "system" or "channel"; onOpen(record, button): a channel's id button was pressed
  constructor(kind, table, countElement, onOpen) {
    this.kind = kind;
    this.spec = KINDS[kind];
    this.body = table.tBodies[0];
    this.countElement = countElement;
    this.onOpen = onOpen;
    this.records = new Map(); // id -> { entry, registrant, stats, row, cells }
    this.registrants = new Map(); // id -> who registered it, as the events tell (lists do not)
    this.filters = {};
  }

  idOf(entry) {
    return entry[this.spec.idField];
  }

  get(id) {
    return this.records.get(id);
  }

  // The whole list, as the registry answered it: rows of entries no longer there go.
  replaceAll(entries) {
    const seen = new Set();
    for (const entry of entries) {
      seen.add(this.idOf(entry));
      this.upsert(entry, null, { counting: false });
    }
    for (const id of [...this.records.keys()]) if (!seen.has(id)) this.remove(id, { counting: false });
    this.updateCount();
  }

  // counting: false leaves the caption's count to the caller (one count for a whole list)
  upsert(entry, registrant, { counting = true } = {}) {
    const id = this.idOf(entry);
    if (typeof id !== "string") return;
    let record = this.records.get(id);
    if (!record) {
      record = { entry, registrant: this.registrants.get(id) || null, stats: null, ...this.createRow(id) };
      this.records.set(id, record);
      this.insertSorted(id, record.row);
    }
    record.entry = entry;
    if (registrant) {
      record.registrant = registrant;
      this.registrants.set(id, registrant);
    }
    this.render(record);
    this.tickRecord(id, record, hostNow());
    this.applyFilterTo(record);
    if (counting) this.updateCount();
  }

  remove(id, { counting = true } = {}) {
    const record = this.records.get(id);
    if (!record) return;
    record.row.remove();
    this.records.delete(id);
    this.registrants.delete(id);
    if (counting) this.updateCount();
  }

  clear() {
    this.body.replaceChildren();
    this.records.clear();
    this.registrants.clear();
    this.updateCount();
  }

  // Who registered an entry (null: nobody now), from an event of the past.
  noteRegistrant(id, registrant) {
    if (registrant) this.registrants.set(id, registrant);
    else this.registrants.delete(id);
    const record = this.records.get(id);
    if (record && registrant) {
      record.registrant = registrant;
      this.render(record);
    }
  }

  createRow(id) {
    const row = document.createElement("tr");
    row.dataset.id = id;
    const cells = {};
    for (const column of this.spec.columns) {
      const cell = document.createElement("td");
      cell.className = column;
      row.append(cell);
      cells[column] = cell;
    }
    if (this.kind === "channel") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "open";
      button.textContent = id;
      button.title = "Open the channel view";
      button.addEventListener("click", () => this.onOpen(this.records.get(id), button));
      cells.id.append(button);
    }
    return { row, cells };
  }

  // Rows stay in id order; a new one goes before the first larger id (existing rows never
  // move, so a focused button keeps its focus).
  insertSorted(id, row) {
    const last = this.body.lastElementChild;
    if (!last || last.dataset.id < id) {
      this.body.append(row); // the usual case: lists come in id order
      return;
    }
    for (const other of this.body.rows) {
      if (other.dataset.id > id) {
        this.body.insertBefore(row, other);
        return;
      }
    }
    this.body.append(row);
  }

  render(record) {
    const values = this.spec.cells(record);
    for (const [column, text] of Object.entries(values)) {
      if (column === "id" && this.kind === "channel") continue; // the button holds it
      setText(record.cells[column], text);
    }
    if (this.kind === "system") {
      const services = Array.isArray(record.entry.services) ? record.entry.services : [];
      record.cells.services.title = services.map((s) => s.description ? `${s.name}: ${s.description}` : s.name).join("\n");
    }
    if (record.registrant) record.cells.owner.title = `registered by ${record.registrant}`;
    if (record.entry.description) record.cells.name.title = record.entry.description;
  }

  // Once a second: the TTL left and the state, from expires_at on the host's clock. Rows past
  // their TTL by the grace go, as the registry no longer lists them.
  tick(now) {
    for (const [id, record] of [...this.records]) this.tickRecord(id, record, now);
  }

  tickRecord(id, record, now) {
    const expiresAt = record.entry.expires_at;
    if (typeof expiresAt !== "number") {
      setText(record.cells.ttl, NONE);
      this.setState(record, "live");
      return;
    }
    const left = expiresAt - now;
    if (left <= -EXPIRED_GRACE_SECONDS) {
      this.remove(id);
      return;
    }
    setText(record.cells.ttl, `${Math.max(0, Math.ceil(left))} s`);
    this.setState(record, left <= 0 ? "expired" : left < EXPIRING_SECONDS ? "expiring" : "live");
  }

  setState(record, state) {
    record.row.dataset.state = state;
    if (record.cells.state) setText(record.cells.state, state);
  }

  // stats: Map channel id -> { held, rate, endpoint } of this host's channels, or null when
  // this host does not report them. A registry entry served elsewhere gets none.
  setStats(stats) {
    for (const record of this.records.values()) {
      const local = stats?.get(this.idOf(record.entry));
      const sameHost = local && (!record.entry.endpoint || !local.endpoint || local.endpoint === record.entry.endpoint);
      record.stats = sameHost ? local : null;
      this.render(record);
    }
  }

  setFilters(filters) {
    this.filters = filters;
    for (const record of this.records.values()) this.applyFilterTo(record);
    this.updateCount();
  }

  applyFilterTo(record) {
    record.row.hidden = !this.matches(record.entry);
  }

  matches(entry) {
    const { search, name, visibility, capability } = this.filters;
    const id = String(this.idOf(entry)).toLowerCase();
    const entryName = this.spec.name(entry).toLowerCase();
    if (search && !id.includes(search) && !entryName.includes(search)) return false;
    if (name && !entryName.includes(name)) return false;
    if (visibility && (entry.visibility || "public") !== visibility) return false;
    if (capability && this.kind === "system") {
      const services = Array.isArray(entry.services) ? entry.services : [];
      if (!services.some((s) => String(s.name).toLowerCase().includes(capability))) return false;
    }
    return true;
  }

  updateCount() {
    const total = this.records.size;
    let shown = 0;
    for (const record of this.records.values()) if (!record.row.hidden) shown++;
    const [one, many] = this.spec.noun;
    let text = total === 0 ? `(no ${many})` : `(${total} ${total === 1 ? one : many}`;
    if (total > 0) text += shown === total ? ")" : `, ${shown} shown)`;
    setText(this.countElement, text);
  }
}

// Writes only when the text changes: the TTL tick touches every row each second.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

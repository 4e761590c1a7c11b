// api.js: every request the page makes to its host. The Bearer token lives in the tab's
// sessionStorage; answers are JSON; a failed request throws an ApiError carrying the status
// (0 when the host could not be reached), so loops can tell "ask for a token" from "retry".

const TOKEN_KEY = "sssn-token";

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type || "";
  }

  // 401 (no token) and 403 on a registry route (a token that fails, or one without the role)
  get needsToken() {
    return this.status === 401 || this.status === 403;
  }
}

export function isAbort(error) {
  return error && error.name === "AbortError";
}

// GET path (on this host) as JSON; throws ApiError, or the AbortError of `signal`.
export async function getJSON(path, signal) {
  const headers = { Accept: "application/json" };
  const token = storedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { headers, signal, cache: "no-store", credentials: "omit" });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, "the host cannot be reached");
  }
  const text = await response.text();
  const body = parseJSON(text);
  if (!response.ok) {
    const message = body?.error?.message || body?.detail || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, body?.error?.type);
  }
  if (body === undefined) throw new ApiError(response.status, "the host's answer is not JSON");
  return body;
}

function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// A registry list route, every page of it: the registry answers at most `limit` entries in id
// order, and a full page means there may be more after its last id.
export async function listAll(route, idField, signal) {
  const limit = 1000;
  const entries = [];
  let after = "";
  for (;;) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (after) query.set("after", after);
    const page = await getJSON(`${route}?${query}`, signal);
    if (!Array.isArray(page)) throw new ApiError(200, `${route} did not answer a list`);
    const items = page;
    entries.push(...items);
    if (items.length < limit) return entries;
    after = items[items.length - 1][idField];
  }
}

// Resolves after `ms`, or at once when `signal` aborts (callers check signal.aborted).
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

// Waits between retries: doubling from `first` to `max` ms, with jitter so that many open
// tabs do not knock on a restarted host at the same instant.
export class Backoff {
  constructor(first = 500, max = 15000) {
    this.first = first;
    this.max = max;
    this.delay = 0;
  }

  reset() {
    this.delay = 0;
  }

  next() {
    this.delay = this.delay ? Math.min(this.delay * 2, this.max) : this.first;
    return this.delay * (0.75 + Math.random() / 2);
  }
}

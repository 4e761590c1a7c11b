// The browser tests' world: real sssn-host processes on 127.0.0.1 and pages of Debian's
// chromium (playwright-core), each test with its own hosts, temp dirs and browser contexts,
// all of which run.mjs tears down after the test, passed or failed. Tests register with
// test(name, fn); fn gets a context t (t.host, t.page, t.api, t.token, t.allowConsole).
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const hostBinary = process.env.SSSN_HOST || join(root, 'sssn-host');

export const tests = [];
export function test(name, fn) { tests.push({ name, fn }); }

export class Failure extends Error {}
export function assert(cond, message) { if (!cond) throw new Failure(message); }
export function assertEqual(actual, expected, what) {
  if (actual !== expected) {
    throw new Failure(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

// Polls fn (sync or async) every 100 ms until it returns a truthy value, which it returns;
// after `timeout` ms it fails naming what it waited for and what fn last gave (or threw).
export async function until(what, fn, { timeout = 8000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = `threw ${e && e.message ? e.message.split('\n')[0] : e}`;
    }
    if (Date.now() >= deadline) {
      throw new Failure(`timed out after ${timeout / 1000} s waiting for ${what} (last: ${
        typeof last === 'string' ? last : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

// Lua source of a system that owns `channels`, registers them and itself, and optionally
// writes `writes.data` to `writes.channel` at `writes.rate` per second.
export function luaSystem({ id, name, services = [], visibility, channels = [], writes, tickRate }) {
  const q = (s) => JSON.stringify(String(s));
  const svc = services.map((s) => `{ name = ${q(s)}, description = ${q(s + ' service')} }`).join(', ');
  const lines = [
    'local sssn = require "sssn"',
    `local s = sssn.system { id = ${q(id)}, name = ${q(name || id)}, tick_rate = ${
      tickRate || (writes ? writes.rate : 1)}, services = { ${svc} } }`,
    'function s:setup()',
  ];
  for (const c of channels) {
    lines.push(`  sssn.registry:register_channel(self:add_channel(sssn.${c.kind || 'broadcast'} { id = ${
      q(c.id)}, name = ${q(c.name || c.id)}, visibility = ${q(c.visibility || 'public')} }).info)`);
  }
  lines.push(visibility
    ? `  local d = self:descriptor(); d.visibility = ${q(visibility)}; sssn.registry:register_system(d)`
    : '  sssn.registry:register_system(self:descriptor())');
  lines.push('  self.n = 0', 'end', 'function s:step()');
  if (writes) {
    lines.push('  self.n = self.n + 1',
      `  self:write_channel(${q(writes.channel)}, { reading = self.n, celsius = 20 + (self.n % 7) / 2 })`);
  }
  lines.push('end', 'return s', '');
  return lines.join('\n');
}

// One test's resources; run.mjs calls cleanup() after the test whatever happened.
export class TestContext {
  constructor(browser) {
    this.browser = browser;
    this.hosts = [];
    this.contexts = [];
    this.dirs = [];
    this.console = [];      // "type: text (url)" of every console error/warning and page error
    this.allowed = [];      // regexps of console messages this test expects
  }

  tmpdir() {
    const d = mkdtempSync(join(tmpdir(), 'sssn-browser-'));
    this.dirs.push(d);
    return d;
  }

  allowConsole(re) { this.allowed.push(re); }

  // Starts ./sssn-host --listen 127.0.0.1:0 with the Lua scripts given ({file: source}) and
  // extra args; resolves when the host has said where it listens. --duration bounds the
  // process even if this runner is killed; --maintenance 1 makes TTL purges prompt.
  async host({ scripts = {}, args = [], authLines } = {}) {
    const dir = this.tmpdir();
    const paths = Object.entries(scripts).map(([file, src]) => {
      const p = join(dir, file);
      writeFileSync(p, src);
      return p;
    });
    const extra = [...args];
    if (authLines) {
      const f = join(dir, 'auth');
      writeFileSync(f, authLines.join('\n') + '\n', { mode: 0o600 });
      extra.push('--auth-file', f);
    }
    const argv = ['--listen', '127.0.0.1:0', '--maintenance', '1', '--duration', '120', ...extra, ...paths];
    const proc = spawn(hostBinary, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const h = { proc, argv, stderr: '', exited: null };
    this.hosts.push(h);
    proc.stdout.resume();
    proc.on('exit', (code, sig) => { h.exited = sig || code; });
    h.url = await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Failure(`host did not report its port in 10 s:\n${h.stderr}`)), 10000);
      proc.stderr.setEncoding('utf8');
      proc.stderr.on('data', (chunk) => {
        h.stderr += chunk;
        const m = /HTTP API on (http:\/\/127\.0\.0\.1:\d+)/.exec(h.stderr);
        if (m) { clearTimeout(timer); ok(m[1]); }
      });
      proc.on('exit', (code, sig) => {
        clearTimeout(timer);
        fail(new Failure(`host exited (${sig || code}) before listening: ${argv.join(' ')}\n${h.stderr}`));
      });
      proc.on('error', (e) => { clearTimeout(timer); fail(e); });
    });
    return h;
  }

  // fetch against a host: t.api(h, 'PUT', '/channels/x', {a: 1}, token) -> {status, headers, body}
  async api(h, method, path, body, token) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(h.url + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, body: json };
  }

  async apiOk(h, method, path, body, token) {
    const r = await this.api(h, method, path, body, token);
    assert(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${r.text}`);
    return r.body;
  }

  // A fresh static token: {token, line} for --auth-file.
  token(sub, role, channels) {
    const argv = ['token', '--static', '--sub', sub, '--role', role];
    if (channels) argv.push('--channels', channels.join(','));
    return new Promise((ok, fail) => {
      execFile(hostBinary, argv, { cwd: root }, (err, out) => {
        if (err) return fail(err);
        const [token, line] = out.trim().split('\n');
        ok({ token: token.trim(), line: line.trim() });
      });
    });
  }

  // A page in its own browser context (its own sessionStorage), console watched.
  async page({ width = 1280, height = 800 } = {}) {
    const context = await this.browser.newContext({ viewport: { width, height } });
    this.contexts.push(context);
    const page = await context.newPage();
    // no single read or action may hang past the deadlines of until() and the test
    page.setDefaultTimeout(5000);
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') {
        const loc = m.location();
        this.console.push(`console ${m.type()}: ${m.text()}${loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
      }
    });
    page.on('pageerror', (e) => this.console.push(`page error: ${e.message}`));
    return page;
  }

  consoleProblems() {
    return this.console.filter((c) => !this.allowed.some((re) => re.test(c)));
  }

  // Closes the pages, stops the hosts, removes the temp dirs; returns what went wrong on the
  // way (a host that died early, or did not stop cleanly on SIGTERM).
  async cleanup() {
    for (const c of this.contexts) await c.close().catch(() => {});
    const stops = await Promise.all(this.hosts.map(stopHost));
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    return stops.filter(Boolean);
  }
}

// SIGTERM (the host drains: long-polls answered, at most ~8 s), SIGKILL after 6 s. Resolves
// to null after a clean stop (exit status 0), else to what happened.
export function stopHost(h) {
  return new Promise((ok) => {
    if (!h.url) return ok(null); // never started: its start already failed the test
    if (h.exited !== null) return ok(`host ${h.url} had exited (${h.exited}) before the test ended`);
    let killed = false;
    const kill = setTimeout(() => { killed = true; try { h.proc.kill('SIGKILL'); } catch {} }, 6000);
    h.proc.once('exit', (code, sig) => {
      clearTimeout(kill);
      if (killed) ok(`host ${h.url} did not stop within 6 s of SIGTERM (killed)`);
      else ok(code === 0 ? null : `host ${h.url} exited ${sig || code} on SIGTERM`);
    });
    try { h.proc.kill('SIGTERM'); } catch { clearTimeout(kill); ok(null); }
  });
}

// For process exit: kill whatever is still running, synchronously.
export function killAll(contexts) {
  for (const t of contexts) {
    for (const h of t.hosts) if (h.exited === null) { try { h.proc.kill('SIGKILL'); } catch {} }
    for (const d of t.dirs) { try { rmSync(d, { recursive: true, force: true }); } catch {} }
  }
}

// Selectors of the contract's DOM hooks.
export const sel = {
  systemRow: (id) => `table#systems tbody tr[data-id="${id}"]`,
  channelRow: (id) => `table#channels tbody tr[data-id="${id}"]`,
};

// Loads the dashboard and waits until the event long-poll runs (#status says "live").
export async function openDashboard(page, h) {
  const res = await page.goto(h.url + '/');
  assert(res && res.status() === 200, `GET / answered ${res && res.status()}`);
  await until('#status to say "live"', async () =>
    /^\s*live\s*$/i.test(await page.locator('#status').textContent()), { timeout: 8000 });
  return res;
}

export async function cellText(page, rowSelector, cell) {
  return (await page.locator(`${rowSelector} td.${cell}`).textContent()).trim();
}

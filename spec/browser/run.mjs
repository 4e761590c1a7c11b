// Runs the dashboard's real-browser tests (spec/browser/*.test.mjs) in Debian's chromium,
// headless, driven by playwright-core, against real sssn-host processes on 127.0.0.1.
// Prints "ok - name" / "not ok - name" (and why) per test, then "N passed, N failed";
// exits 1 when a test failed. Every test's hosts, pages and temp dirs go away after it.
//   node spec/browser/run.mjs [NAME_SUBSTRING]   SSSN_SCREENSHOT=1: rewrite docs/dashboard.png
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { root, tests, TestContext, killAll, hostBinary, Failure } from './lib.mjs';

const CHROMIUM = process.env.SSSN_CHROMIUM || '/usr/bin/chromium';
const TEST_TIMEOUT = 30000;
const live = [];
let passed = 0, failed = 0;

function finish(code) {
  killAll(live);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { console.log(`not ok - interrupted by ${sig}`); failed++; finish(1); });
}
process.on('exit', () => killAll(live));

function fatal(why) {
  console.log(`not ok - browser tests: ${why}`);
  failed++;
  finish(1);
}

if (!existsSync(hostBinary)) fatal(`no ${hostBinary}: run make first`);
if (!existsSync(CHROMIUM)) fatal(`no ${CHROMIUM}: run scripts/deps.sh (Debian package chromium)`);
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  fatal(`playwright-core is not installed (npm ci): ${e.message}`);
}

const dir = join(root, 'spec/browser');
for (const f of readdirSync(dir).filter((f) => f.endsWith('.test.mjs')).sort()) {
  await import(pathToFileURL(join(dir, f)).href);
}
const only = process.argv[2];
const selected = only ? tests.filter((t) => t.name.includes(only)) : tests;

let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
} catch (e) {
  fatal(`chromium did not start: ${e.message.split('\n')[0]}`);
}

for (const { name, fn } of selected) {
  const t = new TestContext(browser);
  live.push(t);
  let error;
  let timer;
  try {
    await Promise.race([
      fn(t),
      new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`took more than ${TEST_TIMEOUT / 1000} s`)), TEST_TIMEOUT); }),
    ]);
    const problems = t.consoleProblems();
    if (problems.length) error = new Failure(`the page logged:\n${problems.join('\n')}`);
  } catch (e) {
    error = e;
    const problems = t.consoleProblems();
    if (problems.length) error.message += `\n(the page also logged:\n${problems.join('\n')})`;
  } finally {
    clearTimeout(timer);
  }
  const stops = await t.cleanup();
  live.splice(live.indexOf(t), 1);
  if (stops.length) {
    if (!error) error = new Failure(stops.join('\n'));
    else error.message += `\n${stops.join('\n')}`;
  }
  if (error) {
    failed++;
    console.log(`not ok - ${name}`);
    const text = (error.constructor.name === 'Failure' || /^(locator|page)\./.test(error.message)
      ? error.message : (error.stack || String(error))).replace(/\x1b\[[0-9;]*m/g, '');
    console.log(text.split('\n').map((l) => `  ${l}`).join('\n'));
    for (const h of t.hosts) {
      const tail = h.stderr.trim().split('\n').slice(-15).join('\n    ');
      if (tail) console.log(`  host ${h.url || '(not started)'} log:\n    ${tail}`);
    }
  } else {
    passed++;
    console.log(`ok - ${name}`);
  }
}

await browser.close().catch(() => {});
finish(failed ? 1 : 0);

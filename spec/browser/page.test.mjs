// The page itself: its security headers, a clean console, keyboard use and phone width.
import { copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test, luaSystem, openDashboard, sel, until, assert, assertEqual, root } from './lib.mjs';

const fleet = () => ({
  'weather.lua': luaSystem({ id: 'weather', name: 'Weather Station', services: ['temperature', 'humidity'],
    channels: [{ id: 'temperature-feed', name: 'Temperature Feed' },
      { id: 'weather-inbox', name: 'Weather Inbox', kind: 'mailbox', visibility: 'private' }],
    writes: { channel: 'temperature-feed', rate: 4 } }),
  'ocr.lua': luaSystem({ id: 'ocr-worker', name: 'OCR Worker', services: ['ocr'],
    channels: [{ id: 'ocr-jobs', name: 'OCR Jobs', kind: 'work_queue' }] }),
  'images.lua': luaSystem({ id: 'image-resizer', name: 'Image Resizer', services: ['resize', 'thumbnail'],
    channels: [{ id: 'image-events', name: 'Image Events', kind: 'passthrough' }],
    writes: { channel: 'image-events', rate: 2 } }),
});

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
  + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

test('the page and its files carry the Content-Security-Policy and have no inline script or style', async (t) => {
  const h = await t.host();
  const r = await t.api(h, 'GET', '/');
  assertEqual(r.status, 200, 'GET / status');
  assert(/^text\/html/.test(r.headers.get('content-type') || ''), `GET / content-type ${r.headers.get('content-type')}`);
  assertEqual(r.headers.get('content-security-policy'), CSP, 'GET / Content-Security-Policy');
  assertEqual(r.headers.get('x-content-type-options'), 'nosniff', 'GET / X-Content-Type-Options');
  assertEqual(r.headers.get('referrer-policy'), 'no-referrer', 'GET / Referrer-Policy');
  assert(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(r.text), 'index.html has an inline <script>');
  assert(!/\sstyle\s*=/i.test(r.text), 'index.html has a style="" attribute');
  assert(!/\son[a-z]+\s*=/i.test(r.text), 'index.html has an inline event handler (on...=)');
  for (const [file, type] of [['app.js', /javascript/], ['style.css', /^text\/css/]]) {
    const f = await t.api(h, 'GET', `/ui/${file}`);
    assertEqual(f.status, 200, `GET /ui/${file} status`);
    assert(type.test(f.headers.get('content-type') || ''), `GET /ui/${file} content-type ${f.headers.get('content-type')}`);
    assertEqual(f.headers.get('content-security-policy'), CSP, `GET /ui/${file} Content-Security-Policy`);
  }
});

test('a normal run logs no console error or warning and fetches nothing from elsewhere', async (t) => {
  const h = await t.host({ scripts: fleet() });
  const page = await t.page();
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(h.url + '/') && !r.url().startsWith('data:')) foreign.push(r.url()); });
  const res = await openDashboard(page, h);
  assertEqual(res.headers()['content-security-policy'], CSP, 'the page\'s Content-Security-Policy as the browser got it');
  await page.locator(sel.channelRow('temperature-feed')).waitFor({ state: 'visible', timeout: 5000 });
  // the 2 s poll of GET /channels has run twice: counts and a write rate are shown
  await until('temperature-feed to show a write rate above 0', async () =>
    /[1-9]/.test(await page.locator(`${sel.channelRow('temperature-feed')} td.rate`).textContent()), { timeout: 8000 });
  assert(/\d/.test(await page.locator(`${sel.channelRow('temperature-feed')} td.count`).textContent()), 'td.count shows a number');
  const chart = page.locator('svg#rate-chart');
  assertEqual(await chart.getAttribute('role'), 'img', 'svg#rate-chart role');
  assert(await page.locator('svg#rate-chart title').count() === 1, 'svg#rate-chart has a <title>');
  await page.locator(`${sel.channelRow('temperature-feed')} td.id .open`).click();
  await until('messages in the channel view', async () => (await page.locator('ol#messages li').count()) > 0);
  await page.locator('button#close-view').click();
  assertEqual(await page.locator('main').count(), 1, 'main landmark');
  assertEqual(await page.getAttribute('#status', 'role'), 'status', '#status role');
  assertEqual(await page.getAttribute('ol#events', 'aria-live'), 'polite', 'ol#events aria-live');
  assert(foreign.length === 0, `requests to other origins: ${foreign.join(', ')}`);
  // console errors and warnings are checked by the runner after every test
});

test('keyboard: Tab reaches a channel\'s button, Enter opens its view, Escape closes it', async (t) => {
  const h = await t.host({ scripts: fleet() });
  const page = await t.page();
  await openDashboard(page, h);
  await page.locator(sel.channelRow('temperature-feed')).waitFor({ state: 'visible', timeout: 5000 });
  let reached = false;
  for (let i = 0; i < 80 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => {
      const a = document.activeElement;
      return !!a && a.matches('.open') && a.closest('tr') && a.closest('tr').dataset.id === 'temperature-feed';
    });
  }
  assert(reached, 'Tab never reached the open button of temperature-feed (80 presses)');
  const outline = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 || s.boxShadow !== 'none';
  });
  assert(outline, 'the focused button shows its focus (outline or box-shadow)');
  await page.keyboard.press('Enter');
  await page.locator('section#channel-view').waitFor({ state: 'visible', timeout: 3000 });
  await until('messages in the channel view', async () => (await page.locator('ol#messages li').count()) > 0);
  await page.keyboard.press('Escape');
  await page.locator('section#channel-view').waitFor({ state: 'hidden', timeout: 3000 });
  // Space works as well on a button
  await page.locator(`${sel.channelRow('ocr-jobs')} td.id .open`).focus();
  await page.keyboard.press(' ');
  await page.locator('section#channel-view').waitFor({ state: 'visible', timeout: 3000 });
  await page.keyboard.press('Escape');
  await page.locator('section#channel-view').waitFor({ state: 'hidden', timeout: 3000 });
});

test('at 375 px wide nothing overflows the page, the channel view open or not', async (t) => {
  const h = await t.host({ scripts: fleet() });
  const page = await t.page({ width: 375, height: 740 });
  await openDashboard(page, h);
  await page.locator(sel.channelRow('temperature-feed')).waitFor({ state: 'visible', timeout: 5000 });
  await page.locator(sel.systemRow('image-resizer')).waitFor({ state: 'visible', timeout: 5000 });
  const width = () => page.evaluate(() => document.documentElement.scrollWidth);
  assert((await width()) <= 375, `document.documentElement.scrollWidth is ${await width()} at 375 px`);
  await page.locator(`${sel.channelRow('temperature-feed')} td.id .open`).click();
  await until('messages in the channel view', async () => (await page.locator('ol#messages li').count()) > 0);
  assert((await width()) <= 375, `with the channel view open, scrollWidth is ${await width()} at 375 px`);
});

test('a screenshot of a small fleet (docs/dashboard.png with SSSN_SCREENSHOT=1)', async (t) => {
  const h = await t.host({ scripts: fleet() });
  await t.apiOk(h, 'PUT', '/registry/channels/deploys?ttl=600',
    { id: 'deploys', name: 'Deploy Notes', kind: 'broadcast', visibility: 'public', description: 'from CI' });
  const page = await t.page({ width: 1280, height: 800 });
  await openDashboard(page, h);
  await page.locator(sel.channelRow('image-events')).waitFor({ state: 'visible', timeout: 5000 });
  await until('a write rate on temperature-feed', async () =>
    /[1-9]/.test(await page.locator(`${sel.channelRow('temperature-feed')} td.rate`).textContent()), { timeout: 8000 });
  await page.locator(`${sel.channelRow('temperature-feed')} td.id .open`).click();
  await until('a few messages in the channel view', async () => (await page.locator('ol#messages li').count()) >= 3);
  const write = process.env.SSSN_SCREENSHOT === '1';
  // for the README's picture only: the chart gets a point per 2 s poll, give it a few
  if (write) await page.waitForTimeout(10000);
  // the picture: the top of the page (the view, below the tables, closed again)
  await page.locator('button#close-view').click();
  await page.evaluate(() => window.scrollTo(0, 0));
  const out = join(t.tmpdir(), 'dashboard.png');
  await page.screenshot({ path: out });
  assert(statSync(out).size > 10000, 'the screenshot is a real picture');
  if (write) copyFileSync(out, join(root, 'docs/dashboard.png'));
});

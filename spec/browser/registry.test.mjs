// The registry tables: what the page lists, and entries that go away on their own.
import { test, luaSystem, openDashboard, sel, cellText, until, assert, assertEqual } from './lib.mjs';

test('lists the registered systems and channels with name, kind, visibility and services', async (t) => {
  const h = await t.host({
    scripts: {
      'weather.lua': luaSystem({
        id: 'weather', name: 'Weather Station', services: ['temperature', 'humidity'],
        channels: [
          { id: 'temperature-feed', name: 'Temperature Feed', kind: 'broadcast', visibility: 'public' },
          { id: 'weather-inbox', name: 'Weather Inbox', kind: 'mailbox', visibility: 'private' },
        ],
      }),
      'ocr.lua': luaSystem({
        id: 'ocr', name: 'OCR Worker', services: ['ocr'],
        channels: [{ id: 'ocr-jobs', name: 'OCR Jobs', kind: 'work_queue', visibility: 'public' }],
      }),
    },
  });
  const page = await t.page();
  await openDashboard(page, h);

  for (const [id, name, services] of [['weather', 'Weather Station', ['temperature', 'humidity']],
    ['ocr', 'OCR Worker', ['ocr']]]) {
    const row = sel.systemRow(id);
    await page.locator(row).waitFor({ state: 'visible', timeout: 8000 });
    assertEqual(await cellText(page, row, 'name'), name, `system ${id}'s td.name`);
    const svc = await cellText(page, row, 'services');
    for (const s of services) assert(svc.includes(s), `system ${id}'s td.services "${svc}" lacks ${s}`);
    assert((await cellText(page, row, 'id')).includes(id), `system ${id}'s td.id`);
    await until(`system ${id}'s td.ttl to show seconds left`, async () => /\d+\s*s/.test(await cellText(page, row, 'ttl')),
      { timeout: 3000 });
    await until(`system ${id}'s td.state to say live`, async () => /live/i.test(await cellText(page, row, 'state')),
      { timeout: 3000 });
  }
  // the TTL counts down each second (default TTL 300 s, refreshed after two thirds of it)
  const left = async () => parseInt(await cellText(page, sel.systemRow('weather'), 'ttl'), 10);
  const before = await left();
  await until(`td.ttl of weather to count down from ${before}`, async () => (await left()) < before, { timeout: 3000 });
  for (const [id, name, kind, visibility, owner] of [
    ['temperature-feed', 'Temperature Feed', 'broadcast', 'public', 'weather'],
    ['weather-inbox', 'Weather Inbox', 'mailbox', 'private', 'weather'],
    ['ocr-jobs', 'OCR Jobs', 'work_queue', 'public', 'ocr']]) {
    const row = sel.channelRow(id);
    await page.locator(row).waitFor({ state: 'visible', timeout: 8000 });
    assertEqual(await cellText(page, row, 'name'), name, `channel ${id}'s td.name`);
    assertEqual(await cellText(page, row, 'kind'), kind, `channel ${id}'s td.kind`);
    assertEqual(await cellText(page, row, 'visibility'), visibility, `channel ${id}'s td.visibility`);
    assert((await cellText(page, row, 'owner')).includes(owner), `channel ${id}'s td.owner names ${owner}`);
    assert((await cellText(page, row, 'endpoint')).includes(h.url.replace('http://', '')),
      `channel ${id}'s td.endpoint names ${h.url}`);
  }
  assertEqual(await page.locator('table#systems tbody tr[data-id]').count(), 2, 'system rows');
  assertEqual(await page.locator('table#channels tbody tr[data-id]').count(), 3, 'channel rows');
  // the caption and column headers make the tables readable to a screen reader
  for (const table of ['systems', 'channels']) {
    assert(await page.locator(`table#${table} caption`).count() === 1, `table#${table} has a caption`);
    assert(await page.locator(`table#${table} th[scope=col]`).count() >= 5, `table#${table} has th[scope=col]`);
  }
});

test('an entry disappears from its table when its TTL passes, without a reload', async (t) => {
  const h = await t.host({ scripts: { 'weather.lua': luaSystem({ id: 'weather', channels: [{ id: 'steady' }] }) } });
  const info = (id) => ({ id, name: `Short-lived ${id}`, kind: 'broadcast', visibility: 'public', description: '' });
  // one registered before the page loads (listed), one after (learnt from the event feed)
  await t.apiOk(h, 'PUT', '/registry/channels/early?ttl=4', info('early'));
  const page = await t.page();
  await openDashboard(page, h);
  await page.evaluate(() => { window.__sameDocument = true; });
  await page.locator(sel.channelRow('early')).waitFor({ state: 'visible', timeout: 3000 });
  await t.apiOk(h, 'PUT', '/registry/channels/late?ttl=2', info('late'));
  await t.apiOk(h, 'PUT', '/registry/systems/brief?ttl=3', { system_id: 'brief', system_name: 'Brief', description: '',
    services: [], channels_read: [], channels_write: [] });
  await until('td.state of system "brief" (3 s left) to say expiring', async () =>
    /^\s*expiring\s*$/i.test(await page.locator(`${sel.systemRow('brief')} td.state`).textContent()), { timeout: 2500 });
  await page.locator(sel.channelRow('late')).waitFor({ state: 'visible', timeout: 3000 });
  await until('events feed to show "registered channel late"', async () =>
    (await page.locator('ol#events li').allTextContents()).some((s) => /registered\s+channel\s+late/.test(s)));

  await until('td.ttl of "late" to show at most its 2 s', async () =>
    parseInt(await page.locator(`${sel.channelRow('late')} td.ttl`).textContent(), 10) <= 2, { timeout: 2000 });
  await page.locator(sel.channelRow('late')).waitFor({ state: 'detached', timeout: 6000 });
  await page.locator(sel.channelRow('early')).waitFor({ state: 'detached', timeout: 6000 });
  await page.locator(sel.systemRow('brief')).waitFor({ state: 'detached', timeout: 6000 });
  await until('events feed to show "expired channel late" newest first', async () => {
    const items = await page.locator('ol#events li').allTextContents();
    const e = items.findIndex((s) => /expired\s+channel\s+late/.test(s));
    const r = items.findIndex((s) => /registered\s+channel\s+late/.test(s));
    return e >= 0 && r > e;
  });
  assert(await page.evaluate(() => window.__sameDocument === true), 'the page reloaded');
  assert(await page.locator(sel.channelRow('steady')).isVisible(), 'the live channel "steady" stays listed');
});

test('a deregistered system disappears from its table', async (t) => {
  const h = await t.host();
  await t.apiOk(h, 'PUT', '/registry/systems/visitor?ttl=60', {
    system_id: 'visitor', system_name: 'Visitor', description: '', services: [{ name: 'greeting', description: '' }],
    channels_read: [], channels_write: [],
  });
  const page = await t.page();
  await openDashboard(page, h);
  await page.locator(sel.systemRow('visitor')).waitFor({ state: 'visible', timeout: 5000 });
  await t.apiOk(h, 'DELETE', '/registry/systems/visitor');
  await page.locator(sel.systemRow('visitor')).waitFor({ state: 'detached', timeout: 5000 });
});

test('the search box and filters hide the rows that do not match', async (t) => {
  const h = await t.host({
    scripts: {
      'a.lua': luaSystem({ id: 'weather', name: 'Weather Station', services: ['temperature'],
        channels: [{ id: 'temperature-feed', name: 'Temperature Feed' },
          { id: 'weather-inbox', name: 'Weather Inbox', kind: 'mailbox', visibility: 'private' }] }),
      'b.lua': luaSystem({ id: 'ocr', name: 'OCR Worker', services: ['ocr'],
        channels: [{ id: 'ocr-jobs', name: 'OCR Jobs', kind: 'work_queue' }] }),
    },
  });
  const page = await t.page();
  await openDashboard(page, h);
  for (const id of ['temperature-feed', 'weather-inbox', 'ocr-jobs']) {
    await page.locator(sel.channelRow(id)).waitFor({ state: 'visible', timeout: 8000 });
  }
  await page.locator(sel.systemRow('ocr')).waitFor({ state: 'visible', timeout: 8000 });
  const shown = async (table) => (await page.locator(`table#${table} tbody tr[data-id]:not([hidden])`)
    .evaluateAll((rows) => rows.map((r) => r.dataset.id))).sort().join(',');
  const expectShown = (table, ids, what) => until(`${what}: ${table} rows ${ids}`, async () => (await shown(table)) === ids,
    { timeout: 3000 });

  await page.fill('input#search', 'ocr');
  await expectShown('channels', 'ocr-jobs', 'search "ocr"');
  await expectShown('systems', 'ocr', 'search "ocr"');
  await page.fill('input#search', '');
  await expectShown('channels', 'ocr-jobs,temperature-feed,weather-inbox', 'search cleared');

  await page.selectOption('select#filter-visibility', 'private');
  await expectShown('channels', 'weather-inbox', 'visibility private');
  await page.selectOption('select#filter-visibility', '');
  await page.fill('input#filter-capability', 'temperature');
  await expectShown('systems', 'weather', 'capability temperature');
  await page.fill('input#filter-capability', '');
  await page.fill('input#filter-name', 'Temperature');
  await expectShown('channels', 'temperature-feed', 'name "Temperature"');
});

test('the events feed keeps the newest 200 events, newest first', async (t) => {
  const h = await t.host();
  const page = await t.page();
  await openDashboard(page, h);
  for (let i = 0; i < 210; i++) {
    const id = `e${String(i).padStart(3, '0')}`;
    await t.apiOk(h, 'PUT', `/registry/channels/${id}?ttl=60`, { id, name: id, kind: 'broadcast', visibility: 'public', description: '' });
  }
  await until('the feed to hold 200 events, the newest (e209) first', async () => {
    const items = await page.locator('ol#events li').allTextContents();
    return items.length === 200 && /registered\s+channel\s+e209/.test(items[0]) && /e010/.test(items[199]);
  }, { timeout: 8000 });
  await page.locator(sel.channelRow('e000')).waitFor({ state: 'attached', timeout: 3000 });
});

test('through a host with --registry, the page shows the whole fleet', async (t) => {
  const a = await t.host({ scripts: { 'weather.lua': luaSystem({ id: 'weather', name: 'Weather Station',
    services: ['temperature'], channels: [{ id: 'temperature-feed', name: 'Temperature Feed' }],
    writes: { channel: 'temperature-feed', rate: 4 } }) } });
  const b = await t.host({ args: ['--registry', a.url], scripts: { 'ocr.lua': luaSystem({ id: 'ocr', name: 'OCR Worker',
    services: ['ocr'], channels: [{ id: 'ocr-jobs', name: 'OCR Jobs', kind: 'work_queue' }] }) } });
  const page = await t.page();
  await openDashboard(page, b);
  for (const id of ['weather', 'ocr']) await page.locator(sel.systemRow(id)).waitFor({ state: 'visible', timeout: 8000 });
  await page.locator(sel.channelRow('temperature-feed')).waitFor({ state: 'visible', timeout: 8000 });
  await page.locator(sel.channelRow('ocr-jobs')).waitFor({ state: 'visible', timeout: 8000 });
  assert((await page.locator(`${sel.channelRow('temperature-feed')} td.endpoint`).textContent()).includes(a.url.slice(7)),
    'temperature-feed is served by host A');
  // counts and rates are known for this host's own channels only
  await until('ocr-jobs (served by B) to show a count', async () =>
    /^\d+$/.test((await page.locator(`${sel.channelRow('ocr-jobs')} td.count`).textContent()).trim()), { timeout: 5000 });
  for (const cell of ['count', 'rate']) {
    assertEqual((await page.locator(`${sel.channelRow('temperature-feed')} td.${cell}`).textContent()).trim(), '—',
      `td.${cell} of temperature-feed, served by another host`);
  }
  // the event feed of B follows A's registry: a registration at A shows up on B's page
  await t.apiOk(a, 'PUT', '/registry/channels/late?ttl=60', { id: 'late', name: 'Late', kind: 'broadcast', visibility: 'public', description: '' });
  await page.locator(sel.channelRow('late')).waitFor({ state: 'visible', timeout: 5000 });
  await t.apiOk(a, 'DELETE', '/registry/channels/late');
  await page.locator(sel.channelRow('late')).waitFor({ state: 'detached', timeout: 5000 });
});

// A host with authentication: the page asks for a token and shows only what it may see.
import { test, luaSystem, openDashboard, sel, until, assert, assertEqual } from './lib.mjs';

async function authHost(t) {
  const admin = await t.token('ops', 'admin');
  const reader = await t.token('viewer', 'read');
  const h = await t.host({
    authLines: [admin.line, reader.line],
    scripts: {
      'svc.lua': luaSystem({ id: 'svc', name: 'Service', services: ['temperature'],
        channels: [{ id: 'public-feed', name: 'Public Feed', visibility: 'public' },
          { id: 'secret-feed', name: 'Secret Feed', visibility: 'private' }] }),
    },
  });
  return { h, admin: admin.token, reader: reader.token };
}

async function giveToken(page, token) {
  const dialog = page.locator('dialog#token-dialog');
  await dialog.waitFor({ state: 'visible', timeout: 5000 });
  assert(await dialog.evaluate((d) => d.open), 'dialog#token-dialog is open (showModal/show)');
  assertEqual(await page.locator('dialog#token-dialog input#token').getAttribute('type'), 'password', 'input#token type');
  const label = await page.locator('dialog#token-dialog label').count();
  assert(label >= 1, 'the token input has a label');
  await page.fill('dialog#token-dialog input#token', token);
  await page.locator('dialog#token-dialog button[type=submit]').click();
  await dialog.waitFor({ state: 'hidden', timeout: 3000 });
}

test('a token-protected host: the page asks for a token; a read token does not see a private channel', async (t) => {
  const { h, admin, reader } = await authHost(t);
  // the first requests go without a token: the 401 is what makes the page ask
  t.allowConsole(/Failed to load resource: the server responded with a status of 401/);
  const page = await t.page();
  const sent = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/registry') || u.pathname.startsWith('/channels')) sent.push([u.pathname, r.headers().authorization]);
  });
  const res = await page.goto(h.url + '/');
  assertEqual(res.status(), 200, 'GET / without a token');
  await until('#status to say "needs a token"', async () =>
    /needs a token/i.test(await page.locator('#status').textContent()), { timeout: 5000 });
  await giveToken(page, reader);
  assertEqual(await page.evaluate(() => sessionStorage.getItem('sssn-token')), reader, 'sessionStorage["sssn-token"]');
  await until('#status to say "live"', async () => /^\s*live\s*$/i.test(await page.locator('#status').textContent()));
  await page.locator(sel.channelRow('public-feed')).waitFor({ state: 'visible', timeout: 5000 });
  await page.locator(sel.systemRow('svc')).waitFor({ state: 'visible', timeout: 5000 });
  assertEqual(await page.locator(sel.channelRow('secret-feed')).count(), 0, 'rows of secret-feed for a read token');

  // registrations made while the page watches: only the public one reaches it
  await t.apiOk(h, 'PUT', '/registry/channels/secret-later?ttl=60',
    { id: 'secret-later', name: 'Secret Later', kind: 'broadcast', visibility: 'private', description: '' }, admin);
  await t.apiOk(h, 'PUT', '/registry/channels/public-later?ttl=60',
    { id: 'public-later', name: 'Public Later', kind: 'broadcast', visibility: 'public', description: '' }, admin);
  await page.locator(sel.channelRow('public-later')).waitFor({ state: 'visible', timeout: 5000 });
  assertEqual(await page.locator(sel.channelRow('secret-later')).count(), 0, 'rows of secret-later for a read token');
  const events = (await page.locator('ol#events li').allTextContents()).join('\n');
  assert(!/secret/.test(events), `the events feed mentions a private channel:\n${events}`);
  const text = await page.evaluate(() => document.body.innerText);
  assert(!/secret/.test(text), 'the page shows the id of a private channel somewhere');

  const after = sent.slice(sent.findIndex(([, a]) => a));
  assert(after.length > 0, 'requests were sent with the token');
  for (const [path, auth] of after) assertEqual(auth, `Bearer ${reader}`, `Authorization of ${path} after the token was given`);

  await page.locator('button#forget-token').click();
  await until('the token to be forgotten', async () =>
    (await page.evaluate(() => sessionStorage.getItem('sssn-token'))) === null, { timeout: 3000 });
});

test('a token-protected host: an admin token shows the private channel too', async (t) => {
  const { h, admin } = await authHost(t);
  t.allowConsole(/Failed to load resource: the server responded with a status of 401/);
  const page = await t.page();
  await page.goto(h.url + '/');
  await giveToken(page, admin);
  await page.locator(sel.channelRow('public-feed')).waitFor({ state: 'visible', timeout: 5000 });
  await page.locator(sel.channelRow('secret-feed')).waitFor({ state: 'visible', timeout: 5000 });
  assertEqual((await page.locator(`${sel.channelRow('secret-feed')} td.visibility`).textContent()).trim(),
    'private', 'secret-feed td.visibility');
  // the token lives in this tab's session: a reload does not ask again
  await page.reload();
  await until('#status to say "live" after a reload', async () => /^\s*live\s*$/i.test(await page.locator('#status').textContent()));
  assert(!(await page.locator('dialog#token-dialog').isVisible()), 'the dialog stays closed after a reload');
  await page.locator(sel.channelRow('secret-feed')).waitFor({ state: 'visible', timeout: 5000 });
});

test('a token-protected host: Escape closes the token dialog', async (t) => {
  const { h } = await authHost(t);
  t.allowConsole(/Failed to load resource: the server responded with a status of 401/);
  const page = await t.page();
  await page.goto(h.url + '/');
  const dialog = page.locator('dialog#token-dialog');
  await dialog.waitFor({ state: 'visible', timeout: 5000 });
  await until('input#token to have the focus', async () => page.evaluate(() => document.activeElement?.id === 'token'),
    { timeout: 2000 });
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden', timeout: 3000 });
  assertEqual(await page.locator('table#channels tbody tr[data-id]').count(), 0, 'channel rows without a token');
});

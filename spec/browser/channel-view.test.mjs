// The channel view: the last messages of a channel, updating live, JSON pretty-printed.
import { test, luaSystem, openDashboard, sel, until, assert, assertEqual } from './lib.mjs';

const notes = () => luaSystem({ id: 'notes-svc', name: 'Notes Service',
  channels: [{ id: 'notes', name: 'Notes' }, { id: 'jobs', name: 'Jobs', kind: 'work_queue' }] });

const preTexts = (page) => page.locator('section#channel-view ol#messages li pre').allTextContents();

test('a new message appears in the channel view, pretty-printed, newest first', async (t) => {
  const h = await t.host({ scripts: { 'notes.lua': notes() } });
  const first = { greeting: 'hello', tags: ['a', 'b'], nested: { n: 1 } };
  await t.apiOk(h, 'PUT', '/channels/notes', first);
  const page = await t.page();
  await openDashboard(page, h);
  assert(!(await page.locator('section#channel-view').isVisible()), 'the channel view is hidden until opened');
  await page.locator(`${sel.channelRow('notes')} td.id .open`).click();
  await page.locator('section#channel-view').waitFor({ state: 'visible', timeout: 3000 });
  await until('the view\'s h2 to name the channel', async () =>
    /notes/i.test(await page.locator('section#channel-view h2').textContent()), { timeout: 3000 });
  const pretty1 = JSON.stringify(first, null, 2);
  await until('the message written before opening, pretty-printed', async () =>
    (await preTexts(page)).some((s) => s.trim() === pretty1), { timeout: 5000 });

  // the view long-polls: a message written now shows without any action on the page
  const second = { celsius: 19.5, sensor: { id: 'kitchen', ok: true } };
  await t.apiOk(h, 'PUT', '/channels/notes', second);
  const pretty2 = JSON.stringify(second, null, 2);
  await until('the new message, pretty-printed', async () =>
    (await preTexts(page)).some((s) => s.trim() === pretty2), { timeout: 5000 });
  const texts = (await preTexts(page)).map((s) => s.trim());
  assertEqual(texts.indexOf(pretty2), 0, 'position of the newest message in ol#messages');
  assertEqual(texts.length, 2, 'messages shown');
  const items = await page.locator('ol#messages li').allTextContents();
  assert(/\b2\b/.test(items[0]) && /\b1\b/.test(items[1]), `each message shows its seq: ${JSON.stringify(items)}`);

  await page.locator('button#close-view').click();
  await page.locator('section#channel-view').waitFor({ state: 'hidden', timeout: 3000 });
});

test('a work queue\'s view says its messages are claimed, not browsed', async (t) => {
  const h = await t.host({ scripts: { 'notes.lua': notes() } });
  await t.apiOk(h, 'PUT', '/channels/jobs', { job: 1 });
  const page = await t.page();
  await openDashboard(page, h);
  await page.locator(`${sel.channelRow('jobs')} td.id .open`).click();
  await page.locator('section#channel-view').waitFor({ state: 'visible', timeout: 3000 });
  await until('the view to say messages of a work queue are claimed', async () =>
    /claimed, not browsed/i.test(await page.locator('section#channel-view').textContent()), { timeout: 3000 });
  // the job is still there for its workers: the page did not claim it
  const r = await t.apiOk(h, 'GET', '/channels/jobs?exclusive=true&limit=10');
  assertEqual(r.messages.length, 1, 'jobs still unclaimed after the view opened');
});

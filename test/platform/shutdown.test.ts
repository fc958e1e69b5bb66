// Stopping (what SIGTERM does in `hei serve`): requests in flight finish, new ones are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { api } from '../../src/platform/context.ts';

let entered: () => void = () => {};
const inside = new Promise<void>((r) => (entered = r));
const ctx = await startTestApp({
  routes: (app) => {
    app.get('/v1/test/slow', {
      config: api({ permit: 'Test:Slow', auth: 'Token', context: 'LoyaltyClub' }),
      schema: {},
      handler: async () => {
        entered();
        await new Promise((r) => setTimeout(r, 400));
        return { finished: true };
      },
    });
  },
});
const c = await ctx.newClub();

test('closing drains the request in flight and then refuses connections', async () => {
  const inFlight = c.request('GET', '/v1/test/slow');
  await inside;
  const closing = ctx.app.close();
  const res = await inFlight;
  assert.deepEqual([res.status, res.body], [200, { finished: true }]);
  await closing;
  await assert.rejects(fetch(ctx.baseUrl + '/health'));
});

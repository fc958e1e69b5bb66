import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';

const ctx = await startTestApp();

test('an authenticated list answers with the pagination info', async () => {
  const c = await ctx.newClub();
  const res = await c.request('GET', '/v1/users');
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, {
    users: [],
    pagination_info: {
      total_count: 0, per_page: 25, total_pages: 0, current_page: 1, next_page: null, prev_page: null,
      is_first_page: true, is_last_page: true, is_out_of_range: false,
    },
  });
});

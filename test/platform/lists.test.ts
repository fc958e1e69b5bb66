// Pagination and sorting through List Users.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';

const ctx = await startTestApp();
const c = await ctx.newClub();
const names = [['Cecilie', 'Berg'], ['Anders', null], ['Bjørn', 'Aas'], ['Dina', 'Dahl'], ['Erik', null]];
for (const [i, [first, last]] of names.entries()) {
  await ctx.db.query(
    `INSERT INTO users (id, loyalty_club_id, first_name, last_name, created_at) VALUES (gen_random_uuid(), $1, $2, $3, now() - make_interval(mins => $4))`,
    [c.club.id, first, last, 10 - i],
  );
}

test('pagination_info on the first, middle, last and an out-of-range page', async () => {
  let res = await c.request('GET', '/v1/users?per_page=2');
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.users.map((u: any) => u.first_name), ['Cecilie', 'Anders']);
  assert.deepEqual(res.body.pagination_info, {
    total_count: 5, per_page: 2, total_pages: 3, current_page: 1, next_page: 2, prev_page: null,
    is_first_page: true, is_last_page: false, is_out_of_range: false,
  });
  res = await c.request('GET', '/v1/users?per_page=2&page_no=2');
  assert.deepEqual(res.body.users.map((u: any) => u.first_name), ['Bjørn', 'Dina']);
  assert.equal(res.body.pagination_info.next_page, 3);
  assert.equal(res.body.pagination_info.prev_page, 1);
  res = await c.request('GET', '/v1/users?per_page=2&page_no=3');
  assert.deepEqual(res.body.users.map((u: any) => u.first_name), ['Erik']);
  assert.equal(res.body.pagination_info.is_last_page, true);
  assert.equal(res.body.pagination_info.next_page, null);
  res = await c.request('GET', '/v1/users?per_page=2&page_no=9');
  assert.deepEqual(res.body, {
    users: [],
    pagination_info: {
      total_count: 5, per_page: 2, total_pages: 3, current_page: 9, next_page: null, prev_page: 3,
      is_first_page: false, is_last_page: true, is_out_of_range: true,
    },
  });
});

test('per_page over the maximum and a page below 1 are 422', async () => {
  let res = await c.request('GET', '/v1/users?per_page=101');
  assert.deepEqual([res.status, res.body], [422, { error: 'Invalid parameters', details: { per_page: [{ error: 'less_or_equal_to', options: { number: 100 } }] } }]);
  res = await c.request('GET', '/v1/users?page_no=100000000000000000000');
  assert.deepEqual(res.body.details, { page_no: [{ error: 'less_or_equal_to', options: { number: 10_000_000 } }] });
  res = await c.request('GET', '/v1/users?page_no=0&per_page=abc');
  assert.deepEqual(res.body.details, {
    page_no: [{ error: 'greater_or_equal_to', options: { number: 1 } }],
    per_page: [{ error: 'not_an_integer' }],
  });
});

test('sorting: single values, arrays paired by index, null position', async () => {
  const order = async (qs: string) => (await c.request('GET', `/v1/users?${qs}`)).body.users.map((u: any) => u.first_name);
  assert.deepEqual(await order('sort_by=first_name'), ['Anders', 'Bjørn', 'Cecilie', 'Dina', 'Erik']);
  assert.deepEqual(await order('sort_by=first_name&sort_direction=desc'), ['Erik', 'Dina', 'Cecilie', 'Bjørn', 'Anders']);
  assert.deepEqual(await order('sort_by[]=last_name&sort_by[]=first_name&null_position=first'), ['Anders', 'Erik', 'Bjørn', 'Cecilie', 'Dina']);
  assert.deepEqual(await order('sort_by[]=last_name&sort_by[]=first_name&sort_direction[]=asc&sort_direction[]=desc&null_position=last'), [
    'Bjørn', 'Cecilie', 'Dina', 'Erik', 'Anders',
  ]);
});

test('sort keys and directions outside the allow-list are 422 inclusion', async () => {
  const res = await c.request('GET', '/v1/users?sort_by[]=first_name&sort_by[]=password&sort_direction=up&null_position=middle');
  assert.equal(res.status, 422);
  assert.deepEqual(res.body.details, {
    sort_by: { '1': [{ error: 'inclusion', options: { in: ['created_at', 'first_name', 'last_name', 'id'] } }] },
    sort_direction: { '0': [{ error: 'inclusion', options: { in: ['asc', 'desc'] } }] },
    null_position: { '0': [{ error: 'inclusion', options: { in: ['first', 'last'] } }] },
  });
});

test('unknown query parameters are not permitted', async () => {
  const res = await c.request('GET', '/v1/users?colour=red');
  assert.deepEqual(res.body, { error: 'Invalid parameters', details: { colour: [{ error: 'not_permitted' }] } });
});

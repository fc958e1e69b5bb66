// Users API › List Users: the back-office users of the caller's loyalty club.
import { Type, type Static } from '@sinclair/typebox';
import { api } from './context.ts';
import { limitOffset, listQuery, orderBy, paginationInfo, PaginationInfoSchema, type ListQuery, selectPage } from './pagination.ts';
import type { DomainModule } from './services.ts';

export const UserSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  first_name: Type.Union([Type.String(), Type.Null()]),
  last_name: Type.Union([Type.String(), Type.Null()]),
  roles: Type.Array(Type.String()),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
});

const SORT_COLUMNS = { created_at: 'created_at', first_name: 'first_name', last_name: 'last_name', id: 'id' };
const Query = listQuery({ defaultPerPage: 25, maxPerPage: 100, sortable: Object.keys(SORT_COLUMNS) });

export const usersRoutes: DomainModule = (app, { db }) => {
  app.get('/v1/users', {
    config: api({ permit: 'Users:Api:Users:Index', auth: 'UserToken', context: 'LoyaltyClub' }),
    schema: {
      summary: 'List Users',
      tags: ['Users'],
      querystring: Query,
      response: { 200: Type.Object({ users: Type.Array(UserSchema), pagination_info: PaginationInfoSchema }) },
    },
    handler: async (request) => {
      const q = request.query as ListQuery;
      const clubId = request.club!.id;
      const { rows, total } = await selectPage<Static<typeof UserSchema>>(
        db,
        'id, first_name, last_name, roles, avatar_url',
        'FROM users WHERE loyalty_club_id = $1',
        `${orderBy(q, SORT_COLUMNS, { by: 'created_at' })} ${limitOffset(q)}`,
        [clubId],
      );
      return { users: rows, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
    },
  });
};

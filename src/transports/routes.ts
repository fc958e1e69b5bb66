// Inbound delivery reports of HTTP SMS gateways. Public (the gateway has no token), so the
// body must carry an HMAC-SHA256 signature made with the club's `report_secret`.
import { Type } from '@sinclair/typebox';
import { api } from '../platform/context.ts';
import { ApiError } from '../platform/errors.ts';
import { findClubBySlug } from '../platform/clubs.ts';
import type { DomainModule } from '../platform/services.ts';
import { loadClubTransportConfigs } from './config.ts';
import { parseReports, verifyReportSignature } from './http-sms.ts';
import { getReportSink } from './directory.ts';

export const SIGNATURE_HEADER = 'x-hei-signature';

const kinds = ['smpp', 'http-sms', 'smtp', 'webpush', 'fcm'];
/** Response schema of one channel of `redactedSettings()` (for `GET /v1/messages/settings`). */
export const TransportSettingsSchema = Type.Object({
  transport: Type.String({ enum: [...kinds, 'outbox', 'unreadable'] }),
  url: Type.Union([Type.String(), Type.Null()]),
  rate: Type.Union([Type.String(), Type.Null()]),
  secondary: Type.Union([
    Type.Object({ transport: Type.String({ enum: [...kinds, 'unreadable'] }), url: Type.Union([Type.String(), Type.Null()]), rate: Type.Union([Type.String(), Type.Null()]) }),
    Type.Null(),
  ]),
});

export const transportRoutes: DomainModule = async (app, { db }) => {
  await app.register(async (scope) => {
    // The signature is over the exact bytes received: keep them.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    scope.post('/v1/transports/http-sms/:club/reports', {
      config: api({ permit: null, auth: 'None', context: 'Global' }),
      schema: {
        summary: 'Delivery reports from an HTTP SMS gateway (HMAC-signed)',
        tags: ['Transports'],
        params: Type.Object({ club: Type.String({ maxLength: 100 }) }),
        response: { 200: Type.Object({ accepted: Type.Integer() }) },
      },
      handler: async (request) => {
        const raw = request.body as Buffer;
        const club = await findClubBySlug(db, (request.params as { club: string }).club);
        const secrets = club
          ? (await loadClubTransportConfigs(db, club.id, undefined, () => {}))
              .filter((c) => c.channel === 'sms' && /^https?:$/.test(new URL(c.url).protocol))
              .map((c) => new URL(c.url).searchParams.get('report_secret'))
              .filter((s): s is string => Boolean(s))
          : [];
        // Unknown club, no gateway with a secret, bad signature: one answer, nothing to probe.
        const header = request.headers[SIGNATURE_HEADER];
        if (!club || !secrets.some((s) => verifyReportSignature(s, raw, Array.isArray(header) ? header[0] : header))) {
          throw new ApiError(401, 'Invalid signature');
        }
        let json: unknown;
        try {
          json = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new ApiError(400, 'Body is not JSON');
        }
        const reports = parseReports(json);
        if (!reports) throw new ApiError(400, 'No reports in body');
        const sink = getReportSink();
        if (!sink) throw new ApiError(503, 'Delivery reports are not accepted right now');
        if (reports.length) await sink(club.id, reports);
        return { accepted: reports.length };
      },
    });
  });
};

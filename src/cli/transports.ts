// `hei transports set | list | reset`: which provider carries a club's SMS, e-mail and push.
// URLs are stored encrypted and only ever printed redacted.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../platform/config.ts';
import { findClubBySlug } from '../platform/clubs.ts';
import { openStore } from '../runtime.ts';
import type { Database } from '../db/connection.ts';
import type { Channel } from '../transports/transport.ts';
import { CHANNELS, checkTransportUrl, redactedSettings, redactUrl, resetClubTransport, setClubTransport } from '../transports/config.ts';
import { parseRate } from '../transports/ratelimit.ts';
import { UsageError } from './usage.ts';

const out = (s: string): void => void process.stdout.write(s + '\n');

async function withClub<T>(slug: string, fn: (db: Database, clubId: number) => Promise<T>): Promise<T> {
  const { db } = await openStore(loadConfig());
  try {
    const club = await findClubBySlug(db, slug);
    if (!club) throw new UsageError(`no loyalty club with slug "${slug}" (see: hei clubs list)`);
    return await fn(db, club.id);
  } finally {
    await db.close();
  }
}

/** The credentials file is read when the transport starts; a broken one is better caught now. */
function checkServiceAccount(file: string): void {
  let sa: any;
  try {
    sa = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the FCM credentials file ${file}: ${(err as Error).message}`);
  }
  if (!sa?.client_email || !sa?.private_key) throw new Error(`${file} is not a service-account key (client_email, private_key)`);
}

function channelOf(v: string): Channel {
  if (!CHANNELS.includes(v as Channel)) throw new UsageError(`--channel must be one of ${CHANNELS.join(', ')}`);
  return v as Channel;
}

export function registerTransportCommands(program: Command): void {
  const t = program.command('transports').description('SMS, e-mail and push providers per loyalty club (default: the file outbox)');
  t.command('set')
    .description('configure the transport of a channel')
    .requiredOption('--club <slug>', 'loyalty club')
    .requiredOption('--channel <channel>', 'sms | email | push')
    .requiredOption('--url <url>', "e.g. 'smpp://ID:PASS@host:2775?window=100', 'smtp://USER:PASS@host:587?pool=5'")
    .option('--secondary', 'set the failover target instead of the primary')
    .option('--rate <windows>', "send rate limit, e.g. '500/s,20000/h' (SMS counted in segments)")
    .action((o) => {
      const channel = channelOf(o.channel);
      try {
        const { url, kind } = checkTransportUrl(o.url, channel);
        if (o.rate) parseRate(o.rate);
        if (kind === 'fcm') checkServiceAccount(url.searchParams.get('credentials')!);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      return withClub(o.club, async (db, clubId) => {
        const role = o.secondary ? 'secondary' : 'primary';
        if (role === 'secondary') {
          const current = await redactedSettings(db, clubId);
          if (current[channel].transport === 'outbox') throw new UsageError(`set a primary ${channel} transport first`);
        }
        await setClubTransport(db, clubId, { channel, role, url: o.url, rate: o.rate ?? null });
        out(`${o.club} ${channel} ${role}: ${redactUrl(o.url)}${o.rate ? ` rate ${o.rate}` : ''}`);
      });
    });
  t.command('list')
    .description('show the transports of a club (secrets redacted)')
    .requiredOption('--club <slug>', 'loyalty club')
    .option('--json', 'machine-readable')
    .action((o) =>
      withClub(o.club, async (db, clubId) => {
        const settings = await redactedSettings(db, clubId);
        if (o.json) return out(JSON.stringify(settings));
        for (const channel of CHANNELS) {
          const s = settings[channel];
          out(`${channel}\tprimary\t${s.url ?? s.transport}${s.rate ? `\trate ${s.rate}` : ''}`);
          if (s.secondary) out(`${channel}\tsecondary\t${s.secondary.url ?? s.secondary.transport}${s.secondary.rate ? `\trate ${s.secondary.rate}` : ''}`);
        }
      }),
    );
  t.command('reset')
    .description('remove the transports of a channel: messages go to the outbox again')
    .requiredOption('--club <slug>', 'loyalty club')
    .requiredOption('--channel <channel>', 'sms | email | push')
    .action((o) => {
      const channel = channelOf(o.channel);
      return withClub(o.club, async (db, clubId) => {
        const n = await resetClubTransport(db, clubId, channel);
        out(n ? `${o.club} ${channel}: back to the outbox` : `${o.club} ${channel}: was not configured (outbox)`);
      });
    });
}

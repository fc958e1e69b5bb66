// The last line of defence: an exception nothing caught (a throw in a timer, an unhandled
// rejection). It is logged with the id of the request it came from. The process keeps serving only
// when the state is known to be sound — the failure belongs to one request and the built-in
// prototypes are as they were at start (a polluted prototype breaks every later request). Anything
// else — a failure outside any request, tampered prototypes, a burst of failures — exits with
// status 1 so that the supervisor (systemd, Docker, Kubernetes) starts a clean process.
import { AsyncLocalStorage } from 'node:async_hooks';

/** The request id of the code running now (set by the app for every request). */
export const requestScope = new AsyncLocalStorage<string>();

const PROTOTYPES: Array<[string, object]> = [
  ['Object', Object.prototype],
  ['Array', Array.prototype],
  ['Function', Function.prototype],
  ['String', String.prototype],
  ['Number', Number.prototype],
  ['Promise', Promise.prototype],
];

const shapeOf = (proto: object) => Reflect.ownKeys(proto).map(String).sort().join(',');

/** At most this many confined failures per minute; more mean something is systematically wrong. */
const MAX_FAILURES_PER_MINUTE = 10;

export interface GuardLog {
  error(obj: object, msg: string): void;
  fatal(obj: object, msg: string): void;
}

export interface ProcessGuard {
  /** Which prototypes changed since the guard was installed (empty when sound). */
  tampered(): string[];
  uninstall(): void;
}

export function installProcessGuard(log: GuardLog, exit: (code: number) => void = (code) => process.exit(code)): ProcessGuard {
  const shapes = new Map(PROTOTYPES.map(([name, proto]) => [name, shapeOf(proto)]));
  const tampered = () => PROTOTYPES.filter(([name, proto]) => shapes.get(name) !== shapeOf(proto)).map(([name]) => name);
  let recent: number[] = [];

  const onFailure = (err: unknown) => {
    const reqId = requestScope.getStore();
    const now = Date.now();
    recent = [...recent.filter((t) => now - t < 60_000), now];
    const broken = tampered();
    const reason =
      broken.length > 0 ? `prototypes changed: ${broken.join(', ')}`
      : reqId === undefined ? 'outside any request'
      : recent.length > MAX_FAILURES_PER_MINUTE ? `more than ${MAX_FAILURES_PER_MINUTE} uncaught failures in a minute`
      : null;
    if (reason === null) {
      log.error({ err, reqId }, 'uncaught exception in a request; state is sound, still serving');
      return;
    }
    log.fatal({ err, reqId, reason }, 'uncaught exception; state is not known to be sound, exiting for a restart');
    exit(1);
  };
  process.on('uncaughtException', onFailure);
  return {
    tampered,
    uninstall: () => {
      process.off('uncaughtException', onFailure);
    },
  };
}

// The permit catalogue: every permit a route declares, plus those checked inside handlers.
import type { Api } from './services.ts';
import { permitNames } from './context.ts';

export function allPermits(app: Api): string[] {
  const set = new Set(app.hei.extraPermits);
  for (const r of app.registeredRoutes) for (const name of permitNames(r.meta?.permit ?? null)) set.add(name);
  return [...set].sort();
}

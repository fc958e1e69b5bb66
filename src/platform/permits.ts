// The permit catalogue: every permit a route declares, plus those checked inside handlers.
import type { Api } from './services.ts';

export function allPermits(app: Api): string[] {
  const set = new Set(app.hei.extraPermits);
  for (const r of app.registeredRoutes) {
    if (r.meta?.permit) set.add(r.meta.permit);
    for (const alias of r.meta?.alsoAccepts ?? []) set.add(alias);
  }
  return [...set].sort();
}

// Rails-style query strings, as the MPC endpoints use them: `ids[]=1&ids[]=2`,
// `properties[city]=Oslo`, `properties[city][]=Oslo`. Plain `a=1&a=2` gives an array too.

type QueryValue = string | string[] | QueryObject;
interface QueryObject {
  [key: string]: QueryValue;
}

const MAX_PAIRS = 1000;

export function parseQueryString(input: string): QueryObject {
  const out: QueryObject = Object.create(null);
  if (!input) return out;
  const pairs = input.split('&').slice(0, MAX_PAIRS);
  for (const pair of pairs) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const rawKey = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1);
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
      value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
    } catch {
      continue; // a malformed escape is dropped, never a 500
    }
    const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
    if (!m) {
      assign(out, key, value, false);
      continue;
    }
    const segments = [...m[2].matchAll(/\[([^[\]]*)\]/g)].map((s) => s[1]);
    let target = out;
    let name = m[1];
    for (const seg of segments) {
      if (seg === '') {
        assign(target, name, value, true);
        name = '';
        break;
      }
      const next = target[name];
      if (typeof next !== 'object' || Array.isArray(next)) target[name] = Object.create(null);
      target = target[name] as QueryObject;
      name = seg;
    }
    if (name !== '') assign(target, name, value, false);
  }
  return out;
}

function assign(target: QueryObject, key: string, value: string, asArray: boolean): void {
  const existing = target[key];
  if (existing === undefined) target[key] = asArray ? [value] : value;
  else if (Array.isArray(existing)) existing.push(value);
  else if (typeof existing === 'string') target[key] = [existing, value];
}

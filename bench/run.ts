// `npm run bench -- <name> [...]`: runs bench/<name>.ts; with no name, lists them.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'common.ts'].includes(f))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();
const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
if (names.length === 0) {
  process.stdout.write(`usage: npm run bench -- <${available.join('|')}>\n`);
  process.exit(2);
}
for (const name of names) {
  if (!available.includes(name)) {
    process.stderr.write(`no benchmark "${name}"; available: ${available.join(', ')}\n`);
    process.exit(2);
  }
  const mod = await import(`./${name}.ts`);
  if (typeof mod.main === 'function') await mod.main(process.argv.slice(3));
}

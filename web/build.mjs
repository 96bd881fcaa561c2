// Bundles the web view (src/) into ../gen/webui, which the Go binary embeds
// (gen/webui/webui.go) and the http-gateway serves at /ui/. Run through
// `make generate` (scripts/generate.sh web), which first installs the
// pinned packages of package-lock.json with `npm ci`. The output is
// deterministic: the same sources and lock file give the same bytes, which
// scripts/lint.sh checks.
import { build } from 'esbuild';
import { copyFileSync, readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'gen', 'webui');
const assets = join(out, 'assets');

rmSync(assets, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

await build({
  entryPoints: [join(here, 'src', 'main.js'), join(here, 'src', 'style.css')],
  outdir: assets,
  entryNames: '[name]',
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome110', 'firefox115', 'safari16'],
  legalComments: 'none', // collected into THIRD_PARTY_NOTICES.txt below
  logLevel: 'warning',
});
copyFileSync(join(here, 'src', 'index.html'), join(assets, 'index.html'));

// The licences of the bundled packages (not of esbuild, which only builds).
const lock = JSON.parse(readFileSync(join(here, 'package-lock.json'), 'utf8'));
let notices = 'Third-party code bundled in main.js, from the npm registry (versions pinned in web/package-lock.json):\n';
for (const [path, meta] of Object.entries(lock.packages).sort()) {
  if (!path || meta.dev) continue;
  const dir = join(here, path);
  const lic = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  notices += `\n==== ${path.replace(/^node_modules\//, '')} ${meta.version} (${meta.license}) ====\n`;
  notices += lic ? readFileSync(join(dir, lic), 'utf8').trim() + '\n' : '(no licence file)\n';
}
writeFileSync(join(assets, 'THIRD_PARTY_NOTICES.txt'), notices);

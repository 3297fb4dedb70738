// The README's library example, extracted from README.md and run as written against the sources: esbuild bundles
// it with `lpo-wgsl/…` resolved to src/ (as package.json `exports` maps them), node runs it in a scratch folder
// that holds the tiny golden model at the example's placeholder path. pack.test.ts runs the same block against
// the packed tarball.
import { build } from 'esbuild';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageEntries } from '../scripts/entries.mjs';
import { readPng } from '../src/io/image.js';
import { runNode } from './helpers.js';
import { prepareExampleCwd, readmeExample } from './readme.js';
import { ROOT } from './tiny-sd.js';

const code = readmeExample();
const cwd = mkdtempSync(join(tmpdir(), 'lpo-readme-'));
// Inside the repo, so that node finds the npm dependencies (webgpu, pngjs) the bundle leaves external.
const bundle = join(ROOT, 'tmp', `readme-example-${process.pid}.mjs`);

beforeAll(async () => {
  prepareExampleCwd(cwd, code);
  mkdirSync(join(ROOT, 'tmp'), { recursive: true });
  const entries = packageEntries();
  await build({
    stdin: { contents: code, loader: 'ts', resolveDir: ROOT, sourcefile: 'README.md' },
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    loader: { '.wgsl': 'text' },
    packages: 'external',
    logLevel: 'error',
    plugins: [{
      name: 'lpo-wgsl-sources',
      setup(b) {
        b.onResolve({ filter: /^lpo-wgsl(\/|$)/ }, (args) => {
          const sub = args.path === 'lpo-wgsl' ? '.' : `.${args.path.slice('lpo-wgsl'.length)}`;
          const e = entries[sub];
          return e ? { path: join(ROOT, e.source) } : { errors: [{ text: `'${args.path}' is not in package.json exports` }] };
        });
      },
    }],
  });
});

afterAll(() => {
  rmSync(cwd, { recursive: true, force: true });
  rmSync(bundle, { force: true });
});

describe('README library example', () => {
  it('is found in README.md and imports the package by its public entry points only', () => {
    expect(code).toMatch(/from 'lpo-wgsl'/);
    expect(code).not.toMatch(/from '\.|src\//);
  });

  it('runs as written: writes the image, its gradient check prints true', async () => {
    const r = await runNode([bundle], { cwd, timeoutMs: 600_000 });
    expect(r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('Warning:'))).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^true \d/m);
    const png = /writePngTensor\('([^']+)'/.exec(code)?.[1];
    expect(png).toBeDefined();
    expect(existsSync(join(cwd, png!))).toBe(true);
    const img = readPng(join(cwd, png!));
    expect([img.height, img.width]).toEqual([16, 16]); // the tiny U-Net's sample_size 8 × the tiny VAE's factor 2
  });
});

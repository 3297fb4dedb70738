// SLOW (about a minute; most of it packing the dependencies on a first run): the package as a user gets it.
// A clean copy of the working tree (tracked and new files, nothing ignored: no dist/, no node_modules of its own)
// runs `npm pack`, which must build first (prepack); the tarball must hold every entry point's bundle and type
// declarations, the CLI and the tokenizer asset, and no sources, tests or fixtures. It is then installed into an
// empty project with `npm install --offline`: the dependencies come as tarballs packed from this repo's
// node_modules (cached under the OS temp dir), so no registry is needed. In that project the README example,
// extracted from README.md, type-checks against the shipped .d.ts and runs as written; `lpo` runs from its bin.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { transform } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPng } from '../src/io/image.js';
import { runNode } from './helpers.js';
import { prepareExampleCwd, readmeExample } from './readme.js';
import { ROOT } from './tiny-sd.js';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'lpo-pack-'));
const clone = join(work, 'clone');
const app = join(work, 'app');
const DEPS_CACHE = join(tmpdir(), 'lpo-pack-deps');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
let tarball = '';
let files: string[] = [];

async function sh(cmd: string, args: string[], cwd: string): Promise<string> {
  const env = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
  try {
    return (await run(cmd, args, { cwd, maxBuffer: 64 << 20, env })).stdout;
  } catch (e) {
    const { stdout = '', stderr = '' } = e as { stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed:\n${`${stdout}\n${stderr}`.trim().split('\n').slice(-30).join('\n')}`);
  }
}

/** The runtime dependency closure of `names`, found in this repo's node_modules: name → package folder. */
function closure(names: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (name: string, from: string) => {
    if (out.has(name)) return;
    // Node's lookup: node_modules of the requiring package and of each folder above it.
    let dir = from;
    for (;;) {
      const cand = join(dir, 'node_modules', name);
      if (existsSync(join(cand, 'package.json'))) {
        out.set(name, cand);
        const p = JSON.parse(readFileSync(join(cand, 'package.json'), 'utf8'));
        for (const d of Object.keys(p.dependencies ?? {})) visit(d, cand);
        return;
      }
      if (dir === ROOT || dirname(dir) === dir) throw new Error(`dependency ${name} is not installed in ${ROOT}/node_modules`);
      dir = dirname(dir);
    }
  };
  for (const n of names) visit(n, ROOT);
  return out;
}

/** A tarball of an installed package, packed once per name@version into DEPS_CACHE. */
async function packedDep(dir: string): Promise<string> {
  const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const file = join(DEPS_CACHE, `${p.name.replace('/', '+')}@${p.version}.tgz`);
  if (existsSync(file)) return file;
  mkdirSync(DEPS_CACHE, { recursive: true });
  const tmp = mkdtempSync(join(DEPS_CACHE, 'tmp-'));
  const [{ filename }] = JSON.parse(await sh('npm', ['pack', dir, '--ignore-scripts', '--json', '--pack-destination', tmp], tmp));
  cpSync(join(tmp, filename), file);
  rmSync(tmp, { recursive: true, force: true });
  return file;
}

beforeAll(async () => {
  // A clean checkout of the working tree, sharing node_modules (esbuild, typescript) with this one.
  const listed = (await sh('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], ROOT)).split('\0').filter(Boolean);
  for (const f of listed) {
    if (!existsSync(join(ROOT, f))) continue; // deleted in the working tree
    mkdirSync(dirname(join(clone, f)), { recursive: true });
    cpSync(join(ROOT, f), join(clone, f));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'));
  // (Not --json: the prepack build's own output would share stdout with the JSON.)
  await sh('npm', ['pack', '--pack-destination', work], clone);
  const tgz = readdirSync(work).filter((f) => f.endsWith('.tgz'));
  expect(tgz).toEqual([`${pkg.name}-${pkg.version}.tgz`]);
  tarball = join(work, tgz[0]);
  files = (await sh('tar', ['-tzf', tarball], work)).split('\n').filter((f) => f && !f.endsWith('/')).map((f) => f.replace(/^package\//, ''));

  // The empty project: the tarball, and each dependency from a local tarball (overrides apply to the whole tree).
  mkdirSync(app);
  const deps = closure(Object.keys(pkg.dependencies ?? {}));
  const overrides: Record<string, string> = {};
  for (const [name, dir] of deps) overrides[name] = `file:${await packedDep(dir)}`;
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'lpo-app', private: true, type: 'module', overrides }, null, 1));
  await sh('npm', ['install', tarball, '--offline', '--ignore-scripts', '--no-package-lock'], app);
}, 600_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('npm pack (SLOW: packs, installs offline, runs the README example)', () => {
  it('builds first, and ships each entry point (bundle + .d.ts), the CLI, the tokenizer asset; no sources, tests or fixtures', () => {
    const expected = ['dist/cli.js', 'assets/bpe_simple_vocab_16e6.txt.gz', 'package.json', 'README.md'];
    for (const target of Object.values(pkg.exports as Record<string, string | { types: string; default: string }>)) {
      if (typeof target !== 'string') expected.push(target.types.slice(2), target.default.slice(2));
    }
    for (const f of expected) expect(files, f).toContain(f);
    expect(files.filter((f) => /^(src|test|bench|kernels|scripts|docs)\/|fixtures|\.test\.|\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.some((f) => /^dist\/chunks\/.+\.js$/.test(f))).toBe(true);
    // The kernels travel inside the bundle as text.
    const chunks = files.filter((f) => f.startsWith('dist/chunks/') && f.endsWith('.js'));
    const bundled = chunks.map((f) => readFileSync(join(app, 'node_modules/lpo-wgsl', f), 'utf8')).join('');
    expect(bundled).toMatch(/@compute @workgroup_size/);
  });

  it('the README example type-checks against the shipped declarations', async () => {
    const code = readmeExample();
    writeFileSync(join(app, 'example.ts'), code);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false,
        // The app's own node types (a Node program has them); @webgpu/types comes with the package.
        typeRoots: [join(app, 'node_modules/@types'), join(ROOT, 'node_modules/@types')], types: ['node'],
      },
      files: ['example.ts'],
    }));
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const r = await runNode([tsc, '-p', app], { cwd: app, timeoutMs: 300_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('the README example runs as written against the installed package', async () => {
    const code = readmeExample();
    prepareExampleCwd(app, code);
    const js = await transform(code, { loader: 'ts', format: 'esm', target: 'node20' });
    writeFileSync(join(app, 'example.mjs'), js.code);
    const r = await runNode([join(app, 'example.mjs')], { cwd: app, timeoutMs: 600_000 });
    expect(r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('Warning:'))).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^true \d/m);
    const png = /writePngTensor\('([^']+)'/.exec(code)![1];
    expect(readPng(join(app, png)).width).toBe(16);
  });

  it('finds its tokenizer asset from the installed bundle, and `lpo` runs from the bin', async () => {
    const tok = await runNode(['--input-type=module', '-e', "const { CLIPTokenizer } = await import('lpo-wgsl/io'); console.log(CLIPTokenizer.fromFile().vocabSize);"], { cwd: app });
    expect(tok.stderr).toBe('');
    expect(tok.stdout.trim()).toBe('49408');
    const bin = join(app, 'node_modules/.bin/lpo');
    const help = await runNode([bin, '--help'], { cwd: app });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}doctor /m);
    const doctor = await runNode([bin, 'doctor'], { cwd: app, timeoutMs: 300_000 });
    expect(doctor.code).toBe(0);
    expect(doctor.stdout).toMatch(/relL2 vs float64 .* OK/);
  });
});

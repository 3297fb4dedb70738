// Running the built `lpo` command in tests (cli-*.test.ts): build the bundle, run it as a user would.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { runNode, type NodeRun } from './helpers.js';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist/cli.js');

/** Bundles the CLI (dist/cli.js) from the current sources. */
export function buildCli(): void {
  execFileSync(process.execPath, ['build.mjs'], { cwd: ROOT, stdio: 'pipe' });
}

/** `node dist/cli.js ...args` in the repo root, with extra environment variables. */
export function lpo(args: string[], env: NodeJS.ProcessEnv = {}): Promise<NodeRun> {
  return runNode([CLI, ...args], { cwd: ROOT, timeoutMs: 300_000, env: { ...process.env, ...env } });
}

/** Points the Vulkan loader at a driver file that does not exist, so Dawn finds no adapter. */
export const NO_DRIVER = { VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' };

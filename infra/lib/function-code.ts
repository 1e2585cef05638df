// Where each function's code comes from. A service built on `strata_lambda::runtime::serve` is one
// binary: every function runs the same zip and learns its part from `STRATA_ROLE`, which the
// construct sets. The example service (crates/orders) is four crates of `functions/` instead.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/** The part of a service a function is (its `STRATA_ROLE`). */
export type FunctionRole = 'command' | 'query' | 'admin' | 'projector' | 'publisher' | 'consumer';

/** Every role, in the order the construct creates them. */
export const FUNCTION_ROLES: readonly FunctionRole[] = ['command', 'query', 'admin', 'projector', 'publisher', 'consumer'];

/** Where a function's code comes from: its role, and for a consumer its name (`STRATA_CONSUMER`). */
export type FunctionCode = (role: FunctionRole, consumer?: string) => lambda.Code;

/** One piece of code (a `strata_lambda::runtime::serve` binary) for every function of the service. */
export function serviceCode(code: lambda.Code): FunctionCode {
  return () => code;
}

/**
 * The zip of a service's one binary, as `cargo lambda build --release --arm64 --output-format zip`
 * leaves it (`target/lambda/{binary}/bootstrap.zip`); fails at synth, naming the fix, if it is missing.
 * With `sha256` (from the team's build, say `sha256sum`), or with a `manifest.json` of
 * `scripts/zip-manifest` beside the zips' directories that lists the binary, a zip whose SHA-256
 * differs is refused: a stale zip cannot ship silently. Without either, nothing is checked. This
 * catches mistakes, not an attacker who can rewrite the manifest beside the zip: for that, sign the
 * code (AWS Signer, a Lambda code signing configuration that enforces it).
 */
export function serviceFromZip(zip: string, sha256?: string): FunctionCode {
  if (!fs.existsSync(zip)) {
    throw new Error(`${zip} does not exist: build it with cargo lambda build --release --arm64 --output-format zip`);
  }
  const binary = path.basename(path.dirname(zip));
  const manifest = path.join(path.dirname(path.dirname(zip)), MANIFEST_FILE);
  if (sha256 !== undefined) checkSha256(zip, sha256, 'the given sha256');
  else if (listsZip(manifest, binary)) checkedZip(manifest, binary, zip);
  // Otherwise nothing is checked (a team's own build without a recorded hash): pass `sha256`.
  return serviceCode(lambda.Code.fromAsset(zip));
}

/** What `scripts/zip-manifest` records beside the zips: the commit they were built from and each zip's SHA-256. */
export interface ZipManifest {
  /** `git rev-parse HEAD` of the build (`unknown` outside a checkout). */
  readonly source: string;
  /** Each zip by its directory's name. */
  readonly zips: Record<string, { readonly sha256: string; readonly bytes: number }>;
}

/** The manifest's name in the zips' directory. */
export const MANIFEST_FILE = 'manifest.json';

/**
 * Whether `file` is a zip manifest that lists `name`. JSON without `zips` is someone else's file (a
 * web app's manifest): not ours, ignored. A file that is not JSON at all is refused, as a manifest of
 * ours cut short would be.
 */
function listsZip(file: string, name: string): boolean {
  if (!fs.existsSync(file)) return false;
  const parsed = readManifest(file) as Partial<ZipManifest>;
  return typeof parsed.zips === 'object' && parsed.zips !== null && name in parsed.zips;
}

function readManifest(file: string): ZipManifest {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ZipManifest;
  } catch (e) {
    throw new Error(`${file} is not a zip manifest (${String(e)}): run scripts/package`);
  }
}

function checkSha256(zip: string, expected: string, what: string): void {
  const actual = createHash('sha256').update(fs.readFileSync(zip)).digest('hex');
  if (actual !== expected) {
    throw new Error(`${zip}: SHA-256 ${actual} is not ${what}'s ${expected}: the zip was rebuilt, replaced or altered since; run scripts/package`);
  }
}

/**
 * `zip`, once its SHA-256 matches the manifest's record of `name` and the manifest was built from the
 * checkout's commit (when both are known; uncommitted changes are not seen).
 */
export function checkedZip(manifestFile: string, name: string, zip: string): string {
  if (!fs.existsSync(manifestFile)) {
    throw new Error(`${manifestFile} does not exist: run scripts/package (it builds the zips and records their SHA-256)`);
  }
  const manifest = readManifest(manifestFile);
  const entry = manifest.zips?.[name];
  if (!entry) throw new Error(`${manifestFile} lists no zip '${name}': run scripts/package`);
  checkSha256(zip, entry.sha256, manifestFile);
  const head = currentCommit(path.dirname(manifestFile));
  if (head && manifest.source !== 'unknown' && manifest.source !== head) {
    throw new Error(`${manifestFile}: the zips were built from ${manifest.source}, the checkout is at ${head}: run scripts/package`);
  }
  return zip;
}

function currentCommit(dir: string): string | undefined {
  try {
    return execFileSync('git', ['-C', dir, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** Where `scripts/package` leaves the example's zips in this repository. */
export const ZIPS_DIR = path.join(__dirname, '..', '..', 'target', 'lambda');

/** The example's crate of `functions/` for each role. */
const EXAMPLE_CRATES: Record<Exclude<FunctionRole, 'consumer'>, string> = {
  command: 'command-api',
  query: 'query-api',
  admin: 'query-api',
  projector: 'projector',
  publisher: 'stream-publisher',
};

/**
 * The example service's zips (`functions/`, built by `scripts/package` into
 * `{dir}/{crate}/bootstrap.zip`); fails at synth, naming the fix, if one is missing or does not match
 * the SHA-256 `scripts/package` recorded in `{dir}/manifest.json`.
 */
export function functionsFromZips(dir: string = ZIPS_DIR): FunctionCode {
  return (role: FunctionRole) => {
    if (role === 'consumer') throw new Error('the example functions have no consumer: give addConsumer its code');
    const zip = path.join(dir, EXAMPLE_CRATES[role], 'bootstrap.zip');
    if (!fs.existsSync(zip)) {
      throw new Error(`${zip} does not exist: run scripts/package first (it builds every function's zip)`);
    }
    return lambda.Code.fromAsset(checkedZip(path.join(dir, MANIFEST_FILE), EXAMPLE_CRATES[role], zip));
  };
}

/**
 * A stand-in for every function (a `bootstrap` that exits with an error), for synthesizing a template
 * where the code does not matter: infrastructure tests, linting, provisioning the emulator. Never deploy
 * it.
 */
export function placeholderCode(): FunctionCode {
  return serviceCode(lambda.Code.fromAsset(path.join(__dirname, '..', 'placeholder')));
}

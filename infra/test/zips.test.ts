// What is deployed is what was built: scripts/package records each zip's SHA-256 (scripts/zip-manifest)
// and synth refuses a zip that does not match, or zips built from another commit.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { functionsFromZips, serviceFromZip } from '../lib/function-code';

const CRATES = ['command-api', 'query-api', 'stream-publisher', 'projector'];
const MANIFEST_SCRIPT = path.join(__dirname, '..', '..', 'scripts', 'zip-manifest');

/** A directory of zips as scripts/package leaves them, with the manifest the script writes. */
function packaged(): string {
  // Inside the checkout (target/ is ignored), as target/lambda is: the commit check needs the repository.
  const target = path.join(__dirname, '..', '..', 'target');
  fs.mkdirSync(target, { recursive: true });
  const dir = fs.mkdtempSync(path.join(target, 'zips-test-'));
  for (const crate of CRATES) {
    fs.mkdirSync(path.join(dir, crate));
    fs.writeFileSync(path.join(dir, crate, 'bootstrap.zip'), `zip of ${crate}`);
  }
  execFileSync(MANIFEST_SCRIPT, [dir, ...CRATES]);
  return dir;
}

test('the manifest records each zip and the commit; matching zips synthesize', () => {
  const dir = packaged();
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    assert.equal(manifest.source, head);
    assert.deepEqual(Object.keys(manifest.zips), CRATES);
    assert.equal(manifest.zips['projector'].sha256, createHash('sha256').update('zip of projector').digest('hex'));
    const code = functionsFromZips(dir);
    for (const role of ['command', 'query', 'admin', 'projector', 'publisher'] as const) code(role);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a zip changed after packaging, zips of another commit, or no manifest: synth refuses, naming the fix', () => {
  const dir = packaged();
  try {
    fs.writeFileSync(path.join(dir, 'projector', 'bootstrap.zip'), 'rebuilt by hand');
    assert.throws(() => functionsFromZips(dir)('projector'), /projector\/bootstrap.zip: SHA-256 [0-9a-f]{64} is not .*manifest.json's .*run scripts\/package/);
    functionsFromZips(dir)('command'); // the others still match
    const file = path.join(dir, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...manifest, source: '0'.repeat(40) }));
    assert.throws(() => functionsFromZips(dir)('command'), /the zips were built from 0{40}, the checkout is at [0-9a-f]{40}/);
    fs.rmSync(file);
    assert.throws(() => functionsFromZips(dir)('command'), /manifest.json does not exist: run scripts\/package/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a service's one zip: checked against a given SHA-256, or the manifest beside it when it lists the binary", () => {
  const dir = packaged();
  try {
    const zip = path.join(dir, 'query-api', 'bootstrap.zip');
    const sha = createHash('sha256').update('zip of query-api').digest('hex');
    serviceFromZip(zip, sha);
    assert.throws(() => serviceFromZip(zip, 'f'.repeat(64)), /is not the given sha256's/);
    serviceFromZip(zip); // the manifest lists it, and it matches
    fs.writeFileSync(zip, 'stale');
    assert.throws(() => serviceFromZip(zip), /SHA-256 .* is not .*manifest.json's/);
    // A binary the manifest does not list (a team's own build): no manifest check.
    fs.mkdirSync(path.join(dir, 'ledger-service'));
    fs.writeFileSync(path.join(dir, 'ledger-service', 'bootstrap.zip'), 'ledger');
    serviceFromZip(path.join(dir, 'ledger-service', 'bootstrap.zip'));
    // Another file named manifest.json (a web app's): not ours, ignored. One that is not JSON (ours
    // cut short, say): refused.
    fs.writeFileSync(path.join(dir, 'manifest.json'), '{"name": "app", "icons": []}');
    serviceFromZip(path.join(dir, 'ledger-service', 'bootstrap.zip'));
    fs.writeFileSync(path.join(dir, 'manifest.json'), '{"source": "abc", "zips": {');
    assert.throws(() => serviceFromZip(path.join(dir, 'ledger-service', 'bootstrap.zip')), /is not a zip manifest/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

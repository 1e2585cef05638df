// The emulator's template is derived from the stack's, and the committed copy the Rust tests deploy is
// current. `STRATA_BLESS=1 npm test` (or `npm run emulator-template`) rewrites it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { EMULATED_TYPES, emulatorTemplate } from '../lib/emulator';
import { EMULATOR_TEMPLATE_FILE, exampleEmulatorTemplate, OUTPUTS, synthesizeExample } from '../lib/strata-stack';

test('infra/emulator-template.json is the current emulator part of the stack', () => {
  const current = exampleEmulatorTemplate();
  if (process.env.STRATA_BLESS === '1') fs.writeFileSync(EMULATOR_TEMPLATE_FILE, current);
  const committed = fs.existsSync(EMULATOR_TEMPLATE_FILE) ? fs.readFileSync(EMULATOR_TEMPLATE_FILE, 'utf8') : '';
  assert.ok(committed === current, 'infra/emulator-template.json is stale: run `npm run emulator-template` in infra/');
});

test('it keeps every data-plane resource of the stack unchanged but for the emulator fixes', () => {
  const full = synthesizeExample() as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
  const emulated = emulatorTemplate(full as never) as { Resources: typeof full.Resources; Outputs: Record<string, unknown> };
  const wanted = Object.entries(full.Resources).filter(([, r]) => EMULATED_TYPES.includes(r.Type));
  assert.deepEqual(Object.keys(emulated.Resources).sort(), wanted.map(([id]) => id).sort());
  assert.deepEqual(
    [...new Set(Object.values(emulated.Resources).map((r) => r.Type))].sort(),
    [...EMULATED_TYPES].sort(),
  );
  for (const [id, resource] of wanted) {
    if (resource.Type === 'AWS::DynamoDB::Table' || resource.Type === 'AWS::SQS::Queue') {
      assert.deepEqual(emulated.Resources[id], resource, id);
    }
  }
  // Every output but the API's URL (no API in the emulator) is there for the tests to read.
  assert.deepEqual(Object.keys(emulated.Outputs).sort(), OUTPUTS.filter((o) => o !== 'ApiUrl').sort());
});

test('a key policy becomes one string (moto) with the account still resolved by CloudFormation', () => {
  const emulated = emulatorTemplate(synthesizeExample() as never) as { Resources: Record<string, { Type: string; Properties: { KeyPolicy: unknown } }> };
  for (const key of Object.values(emulated.Resources).filter((r) => r.Type === 'AWS::KMS::Key')) {
    const join = (key.Properties.KeyPolicy as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
    assert.equal(join[0], '');
    const text = join[1].map((p) => (typeof p === 'string' ? p : 'arn:aws:iam::123456789012:root')).join('');
    const policy = JSON.parse(text) as { Statement: { Action: string; Principal: { AWS: string } }[] };
    assert.equal(policy.Statement[0].Principal.AWS, 'arn:aws:iam::123456789012:root');
  }
});

test('a kept resource that needs a dropped one is refused', () => {
  const template = {
    Resources: {
      Queue: { Type: 'AWS::SQS::Queue', Properties: { KmsMasterKeyId: { Ref: 'Fn' } } },
      Fn: { Type: 'AWS::Lambda::Function', Properties: {} },
    },
  };
  assert.throws(() => emulatorTemplate(template as never), /Queue \(AWS::SQS::Queue\) refers to Fn/);
});

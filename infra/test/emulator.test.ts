// The emulator's template is derived from the stack's, and the committed copy the Rust tests deploy is
// current. `STRATA_BLESS=1 npm test` (or `npm run emulator-template`) rewrites it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { App, Fn, Stack } from 'aws-cdk-lib';
import { EMULATED_TYPES, emulatorTemplate } from '../lib/emulator';
import { EventSourcedService } from '../lib/event-sourced-service';
import { placeholderCode } from '../lib/function-code';
import { cdkContext, synthesize } from '../lib/outputs';
import { EMULATOR_TEMPLATE_FILE, exampleEmulatorTemplate, OUTPUTS, synthesizeExample } from '../lib/strata-stack';

test('infra/emulator-template.json is the current emulator part of the stack', () => {
  const current = exampleEmulatorTemplate();
  if (process.env.STRATA_BLESS === '1') fs.writeFileSync(EMULATOR_TEMPLATE_FILE, current);
  const committed = fs.existsSync(EMULATOR_TEMPLATE_FILE) ? fs.readFileSync(EMULATOR_TEMPLATE_FILE, 'utf8') : '';
  assert.ok(committed === current, 'infra/emulator-template.json is stale: run `npm run emulator-template` in infra/');
});

test('it keeps every data-plane resource of the stack unchanged but for the emulator fixes', () => {
  type Resource = { Type: string; Properties: Record<string, unknown> };
  const full = synthesizeExample() as { Resources: Record<string, Resource>; Outputs: Record<string, unknown> };
  const emulated = emulatorTemplate(full as never) as { Resources: Record<string, Resource>; Outputs: Record<string, unknown> };
  const wanted = Object.entries(full.Resources).filter(([, r]) => EMULATED_TYPES.includes(r.Type));
  assert.deepEqual(Object.keys(emulated.Resources).sort(), wanted.map(([id]) => id).sort());
  assert.deepEqual([...new Set(Object.values(emulated.Resources).map((r) => r.Type))].sort(), [...EMULATED_TYPES].sort());
  const [busId, bus] = wanted.find(([, r]) => r.Type === 'AWS::Events::EventBus') ?? [];
  const busName = JSON.stringify((bus as Resource).Properties.Name);
  // Undo the documented rewrites; what is left must equal the deployed definition.
  const undo = (r: Resource): Resource => {
    if (r.Type === 'AWS::Events::EventBus') return r;
    const text = JSON.stringify(r).split(busName).join(JSON.stringify({ Ref: busId }));
    const copy = JSON.parse(text) as Resource;
    if (copy.Type === 'AWS::KMS::Key') delete copy.Properties.KeyPolicy;
    if (copy.Type === 'AWS::Events::Archive') {
      delete copy.Properties.ArchiveName;
      copy.Properties.EventPattern = JSON.parse(copy.Properties.EventPattern as string);
    }
    return copy;
  };
  for (const [id, resource] of wanted) {
    const expected = structuredClone(resource);
    if (expected.Type === 'AWS::KMS::Key') delete expected.Properties.KeyPolicy;
    assert.deepEqual(undo(emulated.Resources[id]), expected, id);
  }
  // Every output but the API's URL (no API in the emulator) is there for the tests to read, and each
  // function's environment as deployed.
  const envs = ['EnvAdmin', 'EnvCommand', 'EnvProjector', 'EnvPublisher', 'EnvQuery'];
  assert.deepEqual(Object.keys(emulated.Outputs).sort(), [...OUTPUTS.filter((o) => o !== 'ApiUrl' && o !== 'AdminApiUrl'), ...envs].sort());
  const functions = Object.values(full.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
  const command = functions.find((f) => (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables.STRATA_ROLE === 'command');
  const joined = (emulated.Outputs.EnvCommand as { Value: { 'Fn::Join': [string, unknown[]] } }).Value['Fn::Join'][1];
  // The JSON text, with each reference in place of its value, is the function's environment.
  const text = joined.map((part) => (typeof part === 'string' ? part : `@${JSON.stringify(part).replace(/"/g, "'")}@`)).join('');
  const decoded = JSON.parse(text.replace(/"@([^@]*)@"/g, (_, ref: string) => JSON.stringify(`@${ref}@`)));
  const expected = Object.fromEntries(
    Object.entries((command?.Properties.Environment as { Variables: Record<string, unknown> }).Variables).map(([k, v]) => [
      k,
      typeof v === 'string' ? v : `@${JSON.stringify(v).replace(/"/g, "'")}@`,
    ]),
  );
  assert.deepEqual(decoded, expected);
});

test('a key policy becomes one string (moto) with the account still resolved by CloudFormation, without statements naming roles', () => {
  const emulated = emulatorTemplate(synthesizeExample() as never) as { Resources: Record<string, { Type: string; Properties: { KeyPolicy: unknown } }> };
  const principals = Object.entries(emulated.Resources)
    .filter(([, r]) => r.Type === 'AWS::KMS::Key')
    .map(([id, key]) => {
      const join = (key.Properties.KeyPolicy as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
      assert.equal(join[0], '');
      const text = join[1].map((p) => (typeof p === 'string' ? p : '@intrinsic@')).join('');
      const policy = JSON.parse(text) as { Statement: { Sid?: string; Principal: { AWS: string } }[] };
      return [id.replace(/[0-9A-F]{8}$/, ''), policy.Statement.map((s) => [s.Sid, s.Principal.AWS])];
    });
  // The table key: CDK's default (the account). The field key: the deployment's role only, the
  // break-glass role and the functions' roles being no resources of the emulator.
  assert.deepEqual(Object.fromEntries(principals), {
    OrdersTableKey: [[undefined, '@intrinsic@']],
    OrdersFieldKey: [['Deploy', '@intrinsic@']],
  });
});

test('references in every intrinsic form are followed; strings are left as they are', () => {
  const template = {
    Resources: {
      Queue: {
        Type: 'AWS::SQS::Queue',
        Properties: {
          QueueName: { 'Fn::Sub': ['${Local}-${AWS::StackName}', { Local: { 'Fn::GetAtt': 'Fn.Arn' } }] },
        },
      },
      Fn: { Type: 'AWS::Lambda::Function', Properties: {} },
      Key: { Type: 'AWS::KMS::Key', Properties: { KeyPolicy: '{"Version":"2012-10-17"}' } },
    },
  };
  assert.throws(() => emulatorTemplate(template as never), /Queue \(AWS::SQS::Queue\) refers to Fn/);
  delete (template.Resources as Record<string, unknown>).Queue;
  const kept = emulatorTemplate(template as never) as { Resources: { Key: { Properties: { KeyPolicy: unknown } } } };
  assert.equal(kept.Resources.Key.Properties.KeyPolicy, '{"Version":"2012-10-17"}');
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

test("a function's environment reaches the emulator as JSON, a token inside a longer value included", () => {
  const app = new App({ context: cdkContext() });
  const stack = new Stack(app, 'Tokens');
  const service = new EventSourcedService(stack, 'S', {
    code: placeholderCode(),
    aggregates: ['ticket'],
    projections: [],
    eventSource: 'com.example.desk',
    tenancy: { fixed: 'acme' },
    auth: { iam: true },
  });
  service.addConsumer('mailer', {
    environment: {
      MAILER_TARGETS: JSON.stringify({ queue: service.deliveryDeadLetters.queueUrl }),
      MAILER_TOPIC: Fn.sub('{"arn":"${Arn}"}', { Arn: service.fieldKey.keyArn }),
    },
  });
  const emulated = emulatorTemplate(synthesize(app, stack) as never) as unknown as { Outputs: Record<string, { Value: unknown }> };
  // Resolve the Fn::Join as CloudFormation would, each intrinsic as a quote-free stand-in.
  const resolve = (value: unknown): string => {
    if (typeof value === 'string') return value;
    const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
    if (join) return join[1].map(resolve).join(join[0]);
    const sub = (value as { 'Fn::Sub'?: [string, unknown] })['Fn::Sub'];
    if (sub) return sub[0].replace(/\$\{[^}]*\}/g, 'RESOLVED');
    return 'RESOLVED';
  };
  const env = JSON.parse(resolve(emulated.Outputs.EnvConsumerMailer.Value)) as Record<string, string>;
  assert.deepEqual(JSON.parse(env.MAILER_TARGETS), { queue: 'RESOLVED' });
  assert.deepEqual(JSON.parse(env.MAILER_TOPIC), { arn: 'RESOLVED' });
  assert.equal(env.STRATA_CONSUMER, 'mailer');
});

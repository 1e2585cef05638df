// cdk-nag's AwsSolutions pack over the example stack in each configuration: synth fails on any
// unacknowledged error (each acknowledgment in lib/ carries its reason), and the report lists none.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { placeholderCode } from '../lib/function-code';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { cdkContext, EXAMPLE_EVENT_SOURCE, StrataStack, type StrataStackProps } from '../lib/strata-stack';

type Report = { pluginReports: { pluginName: string; violations: { ruleName: string; severity?: string }[] }[] };

function nag(props: Partial<StrataStackProps>, tamper?: (stack: StrataStack) => void): Report {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-nag-'));
  const app = new App({ outdir, context: cdkContext() });
  const stack = new StrataStack(app, 'Strata', { code: placeholderCode(), eventSource: EXAMPLE_EVENT_SOURCE, ...props });
  tamper?.(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    try {
      app.synth();
    } catch (e) {
      // Synth fails on an unacknowledged error; the report says which.
      if (!String(e).includes('Validation failed')) throw e;
    }
    return JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as Report;
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

const configurations: [string, Partial<StrataStackProps>][] = [
  ['IAM auth, fixed tenant (the default)', {}],
  ['JWT auth, tenant claim', { tenancy: { claim: 'tenant' }, auth: { jwt: { issuer: 'https://issuer.example.com', audience: ['strata'] } } }],
  ['tenant isolation, throwaway data', { tenancy: { fixed: 'acme' }, tenantIsolation: true, retainData: false }],
];

for (const [name, props] of configurations) {
  test(`cdk-nag AwsSolutions: no unacknowledged error (${name})`, () => {
    const report = nag(props);
    const errors = report.pluginReports.flatMap((r) =>
      r.violations.filter((v) => v.severity === 'error' || v.severity === 'fatal').map((v) => `${r.pluginName}: ${v.ruleName}`),
    );
    assert.deepEqual(errors, []);
  });
}

test('cdk-nag AwsSolutions: no unacknowledged error (with consumers, one issuing commands)', () => {
  const report = nag({}, (stack) => {
    stack.service.addConsumer('mailer');
    stack.service.addConsumer('process', { issuesCommands: true, eventPattern: { detailType: ['OrderPlaced'] } });
  });
  const errors = report.pluginReports.flatMap((r) =>
    r.violations.filter((v) => v.severity === 'error' || v.severity === 'fatal').map((v) => `${r.pluginName}: ${v.ruleName}`),
  );
  assert.deepEqual(errors, []);
});

test('cdk-nag runs: a queue without a DLQ or TLS enforcement added to the stack is reported', () => {
  const report = nag({}, (stack) => new sqs.Queue(stack, 'Careless', { enforceSSL: false }));
  const errors = report.pluginReports.flatMap((r) => r.violations.filter((v) => v.severity === 'error').map((v) => v.ruleName));
  assert.deepEqual(errors.sort(), ['AwsSolutions-SQS3', 'AwsSolutions-SQS4']);
});

// The ledger stack from the packed strata-cdk: its routes, its consumer, cdk-nag clean, and the
// committed emulator template current.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { cdkContext, placeholderCode } from 'strata-cdk';
import { EMULATOR_TEMPLATE_FILE, ledgerEmulatorTemplate } from '../lib/emulator';
import { LedgerStack } from '../lib/ledger-stack';

test('routes of both aggregates and both read models; the process as a consumer that commits', () => {
  const app = new App({ context: cdkContext() });
  const template = Template.fromStack(new LedgerStack(app, 'Ledger', { code: placeholderCode() }));
  const keys = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((r) => r.Properties.RouteKey);
  for (const key of ['POST /account/{id}/commands/{name}', 'POST /transfer/{id}/commands/{name}', 'GET /views/balance/{id}', 'GET /views/transfer-status/{id}']) {
    assert.ok(keys.includes(key), key);
  }
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: { STRATA_ROLE: 'consumer', STRATA_CONSUMER: 'transfer-process' } },
  });
  template.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { source: ['com.example.ledger'], 'detail-type': ['TransferRequested'] },
  });
});

test('cdk-nag AwsSolutions: no unacknowledged error', () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ledger-nag-'));
  try {
    const app = new App({ outdir, context: cdkContext() });
    new LedgerStack(app, 'Ledger', { code: placeholderCode() });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    app.synth();
    const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as {
      pluginReports: { violations: { ruleName: string; severity?: string }[] }[];
    };
    const errors = report.pluginReports.flatMap((r) => r.violations.filter((v) => v.severity === 'error').map((v) => v.ruleName));
    assert.deepEqual(errors, []);
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
});

test('emulator-template.json is what the stack synthesizes (STRATA_BLESS=1 rewrites it)', () => {
  const now = ledgerEmulatorTemplate();
  if (process.env.STRATA_BLESS === '1') fs.writeFileSync(EMULATOR_TEMPLATE_FILE, now);
  assert.equal(fs.readFileSync(EMULATOR_TEMPLATE_FILE, 'utf8'), now, 'stale: run npm run emulator-template');
});

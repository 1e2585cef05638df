// The ledger's CDK app: `npx cdk deploy` after building its one binary
// (`cargo lambda build --release --arm64 --output-format zip -p ledger-service` at the repository
// root). `-c strata:code=placeholder` synthesizes without it.
import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { cdkContext, placeholderCode, serviceFromZip } from 'strata-cdk';
import { LedgerStack } from '../lib/ledger-stack';

const app = new App({ context: cdkContext() });
const zip = path.join(__dirname, '..', '..', '..', '..', 'target', 'lambda', 'ledger-service', 'bootstrap.zip');
new LedgerStack(app, 'Ledger', {
  code: app.node.tryGetContext('strata:code') === 'placeholder' ? placeholderCode() : serviceFromZip(zip),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));

// The ledger stack's emulator template (committed beside the app, provisioned by the ledger's
// end-to-end test on the emulator).
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { cdkContext, placeholderCode, synthesizeEmulatorTemplate } from 'strata-cdk';
import { LedgerStack } from './ledger-stack';

/** Where it is committed (`npm run emulator-template` or `STRATA_BLESS=1 npm test` rewrites it). */
export const EMULATOR_TEMPLATE_FILE = path.join(__dirname, '..', 'emulator-template.json');

/** The emulator's part of the ledger stack, synthesized with placeholder code. */
export function ledgerEmulatorTemplate(): string {
  const app = new App({ context: cdkContext() });
  return synthesizeEmulatorTemplate(app, new LedgerStack(app, 'Ledger', { code: placeholderCode() }));
}

// Writes emulator-template.json: the emulator's part of the ledger stack.
import * as fs from 'node:fs';
import { EMULATOR_TEMPLATE_FILE, ledgerEmulatorTemplate } from '../lib/emulator';

fs.writeFileSync(EMULATOR_TEMPLATE_FILE, ledgerEmulatorTemplate());
console.log(`wrote ${EMULATOR_TEMPLATE_FILE}`);

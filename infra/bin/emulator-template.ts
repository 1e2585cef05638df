// Writes infra/emulator-template.json: the emulator's part of the example stack (see lib/emulator.ts).
// `npm run emulator-template`; the infra tests fail while the committed file is stale.
import * as fs from 'node:fs';
import { EMULATOR_TEMPLATE_FILE, exampleEmulatorTemplate } from '../lib/strata-stack';

fs.writeFileSync(EMULATOR_TEMPLATE_FILE, exampleEmulatorTemplate());
console.log(`wrote ${EMULATOR_TEMPLATE_FILE}`);

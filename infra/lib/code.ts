// Function code: the arm64 zips `scripts/package` builds (one cargo-lambda invocation for all four
// functions, into target/lambda/{name}/bootstrap.zip).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { FunctionCode, FunctionName } from './strata-function';

/** Where `scripts/package` leaves the zips in this repository. */
export const ZIPS_DIR = path.join(__dirname, '..', '..', 'target', 'lambda');

/** Each function's `bootstrap.zip` under `dir`; fails at synth, naming the fix, if one is missing. */
export function functionsFromZips(dir: string = ZIPS_DIR): FunctionCode {
  return (name: FunctionName) => {
    const zip = path.join(dir, name, 'bootstrap.zip');
    if (!fs.existsSync(zip)) {
      throw new Error(`${zip} does not exist: run scripts/package first (it builds every function's zip)`);
    }
    return lambda.Code.fromAsset(zip);
  };
}

/**
 * A stand-in for every function (a `bootstrap` that exits with an error), for synthesizing the template
 * where the code does not matter: infrastructure tests, linting, provisioning the emulator. Never deploy
 * it: `bin/app.ts` uses it only when asked with `-c strata:code=placeholder`.
 */
export function placeholderCode(): FunctionCode {
  const dir = path.join(__dirname, '..', 'placeholder');
  return () => lambda.Code.fromAsset(dir);
}

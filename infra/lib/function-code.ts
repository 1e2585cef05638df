// Where each function's code comes from. A service built on `strata_lambda::runtime::serve` is one
// binary: every function runs the same zip and learns its part from `STRATA_ROLE`, which the
// construct sets. The example service (crates/orders) is four crates of `functions/` instead.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/** The part of a service a function is (its `STRATA_ROLE`). */
export type FunctionRole = 'command' | 'query' | 'admin' | 'projector' | 'publisher' | 'consumer';

/** Every role, in the order the construct creates them. */
export const FUNCTION_ROLES: readonly FunctionRole[] = ['command', 'query', 'admin', 'projector', 'publisher', 'consumer'];

/** Where a function's code comes from: its role, and for a consumer its name (`STRATA_CONSUMER`). */
export type FunctionCode = (role: FunctionRole, consumer?: string) => lambda.Code;

/** One piece of code (a `strata_lambda::runtime::serve` binary) for every function of the service. */
export function serviceCode(code: lambda.Code): FunctionCode {
  return () => code;
}

/**
 * The zip of a service's one binary, as `cargo lambda build --release --arm64 --output-format zip`
 * leaves it (`target/lambda/{binary}/bootstrap.zip`); fails at synth, naming the fix, if it is missing.
 */
export function serviceFromZip(zip: string): FunctionCode {
  if (!fs.existsSync(zip)) {
    throw new Error(`${zip} does not exist: build it with cargo lambda build --release --arm64 --output-format zip`);
  }
  return serviceCode(lambda.Code.fromAsset(zip));
}

/** Where `scripts/package` leaves the example's zips in this repository. */
export const ZIPS_DIR = path.join(__dirname, '..', '..', 'target', 'lambda');

/** The example's crate of `functions/` for each role. */
const EXAMPLE_CRATES: Record<Exclude<FunctionRole, 'consumer'>, string> = {
  command: 'command-api',
  query: 'query-api',
  admin: 'query-api',
  projector: 'projector',
  publisher: 'stream-publisher',
};

/**
 * The example service's zips (`functions/`, built by `scripts/package` into
 * `{dir}/{crate}/bootstrap.zip`); fails at synth, naming the fix, if one is missing.
 */
export function functionsFromZips(dir: string = ZIPS_DIR): FunctionCode {
  return (role: FunctionRole) => {
    if (role === 'consumer') throw new Error('the example functions have no consumer: give addConsumer its code');
    const zip = path.join(dir, EXAMPLE_CRATES[role], 'bootstrap.zip');
    if (!fs.existsSync(zip)) {
      throw new Error(`${zip} does not exist: run scripts/package first (it builds every function's zip)`);
    }
    return lambda.Code.fromAsset(zip);
  };
}

/**
 * A stand-in for every function (a `bootstrap` that exits with an error), for synthesizing a template
 * where the code does not matter: infrastructure tests, linting, provisioning the emulator. Never deploy
 * it.
 */
export function placeholderCode(): FunctionCode {
  return serviceCode(lambda.Code.fromAsset(path.join(__dirname, '..', 'placeholder')));
}

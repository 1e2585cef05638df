// Synthesizing a service's stack outside the CDK CLI: for tests, and for the emulator's template.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type App, Stack } from 'aws-cdk-lib';
import { emulatorTemplate } from './emulator';

/** The context of Strata's `cdk.json` (the feature flags it is tested with), for apps made outside the CLI. */
export function cdkContext(): Record<string, unknown> {
  const file = path.join(__dirname, '..', 'cdk.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { context: Record<string, unknown> }).context;
}

/** A stack's synthesized template. */
export function synthesize(app: App, stack: Stack): Record<string, unknown> {
  return app.synth().getStackArtifact(stack.artifactId).template;
}

/**
 * The emulator's template of a stack (table, keys, bus, archive, rules, queues and the stack's outputs
 * that name them), as JSON text to commit beside the app: a test provisions it on the emulator
 * through CloudFormation, and the app's tests compare it with what the stack synthesizes now.
 */
export function synthesizeEmulatorTemplate(app: App, stack: Stack): string {
  return `${JSON.stringify(emulatorTemplate(synthesize(app, stack) as never), null, 2)}\n`;
}

// The stack that deploys the example service (crates/orders) with EventSourcedService, and names what
// callers and operators need as outputs (the emulator provisioning reads the same outputs).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { placeholderCode } from './code';
import { emulatorTemplate } from './emulator';
import { type ApiAuth, EventSourcedService, type Tenancy } from './event-sourced-service';
import type { FunctionCode } from './strata-function';

/** Properties of {@link StrataStack}. */
export interface StrataStackProps extends StackProps {
  /** Function code (zips from `scripts/package`, or the placeholder for synth-only uses). */
  readonly code: FunctionCode;
  /** The EventBridge source of the service's events. */
  readonly eventSource: string;
  /** Tenancy (default: fixed tenant `demo`). */
  readonly tenancy?: Tenancy;
  /** HTTP API authentication (default IAM). */
  readonly auth?: ApiAuth;
  /** Confine table access to the fixed tenant (default false). */
  readonly tenantIsolation?: boolean;
  /** Keep data on stack deletion (default true). */
  readonly retainData?: boolean;
  /** Streams a warm command function keeps in memory (default 1000; 0 turns the cache off). */
  readonly streamCacheEntries?: number;
  /** The commit item format the command function writes (default `v3`; `v2` or `legacy` for an upgrade's first deploy). */
  readonly commitFormat?: 'v3' | 'v2' | 'legacy';
  /** Snapshots kept per stream (see `EventSourcedServiceProps.snapshotKeep`). */
  readonly snapshotKeep?: number;
}

/** The names the stack outputs, shared with the emulator provisioning and the Rust tests. */
export const OUTPUTS = [
  'TableName',
  'FieldKeyArn',
  'EventBusName',
  'EventSource',
  'ProjectorQueueUrl',
  'ProjectorQueueArn',
  'ProjectorDeadLetterQueueUrl',
  'DeliveryDeadLetterQueueUrl',
  'PublisherFailureQueueUrl',
  'ApiUrl',
] as const;

/** The example orders service. */
export class StrataStack extends Stack {
  /** The service. */
  readonly service: EventSourcedService;

  constructor(scope: Construct, id: string, props: StrataStackProps) {
    super(scope, id, props);
    const service = new EventSourcedService(this, 'Orders', {
      code: props.code,
      eventSource: props.eventSource,
      tenancy: props.tenancy ?? { fixed: 'demo' },
      auth: props.auth ?? { iam: true },
      tenantIsolation: props.tenantIsolation,
      streamCacheEntries: props.streamCacheEntries,
      commitFormat: props.commitFormat,
      snapshotKeep: props.snapshotKeep,
      removalPolicy: props.retainData === false ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
    this.service = service;
    const outputs: Record<(typeof OUTPUTS)[number], string> = {
      TableName: service.table.tableName,
      FieldKeyArn: service.fieldKey.keyArn,
      EventBusName: service.bus.eventBusName,
      EventSource: props.eventSource,
      ProjectorQueueUrl: service.projectorQueue.queueUrl,
      ProjectorQueueArn: service.projectorQueue.queueArn,
      ProjectorDeadLetterQueueUrl: service.projectorDeadLetters.queueUrl,
      DeliveryDeadLetterQueueUrl: service.deliveryDeadLetters.queueUrl,
      PublisherFailureQueueUrl: service.publisherFailures.queueUrl,
      ApiUrl: service.api.apiEndpoint,
    };
    for (const [name, value] of Object.entries(outputs)) new CfnOutput(this, name, { value });
  }
}

/** The EventBridge source of the example service. */
export const EXAMPLE_EVENT_SOURCE = 'com.example.orders';

/** Where the emulator's template is committed (generated; `STRATA_BLESS=1 npm test` rewrites it). */
export const EMULATOR_TEMPLATE_FILE = path.join(__dirname, '..', 'emulator-template.json');

/** The context of `cdk.json` (feature flags such as minimizePolicies), for apps made outside the CLI. */
export function cdkContext(): Record<string, unknown> {
  const file = path.join(__dirname, '..', 'cdk.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { context: Record<string, unknown> }).context;
}

/** The example stack's template as synthesized with placeholder code (no zips needed). */
export function synthesizeExample(props: Partial<StrataStackProps> = {}): Record<string, unknown> {
  const app = new App({ context: cdkContext() });
  const stack = new StrataStack(app, 'Strata', { code: placeholderCode(), eventSource: EXAMPLE_EVENT_SOURCE, ...props });
  return app.synth().getStackArtifact(stack.artifactId).template;
}

/** The emulator's template of the example stack, as committed in `infra/emulator-template.json`. */
export function exampleEmulatorTemplate(): string {
  return `${JSON.stringify(emulatorTemplate(synthesizeExample() as never), null, 2)}\n`;
}

// The stack that deploys the example service (crates/orders) with EventSourcedService, and names what
// callers and operators need as outputs (the emulator provisioning reads the same outputs). One user
// of the construct, as a team's own stack is (see examples/ledger/infra for a service of one binary).
import * as path from 'node:path';
import { App, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { type ApiAuth, EventSourcedService, SERVICE_OUTPUTS, type Tenancy } from './event-sourced-service';
import { type FunctionCode, placeholderCode } from './function-code';
import { cdkContext, synthesize, synthesizeEmulatorTemplate } from './outputs';

export { cdkContext } from './outputs';

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
export const OUTPUTS = SERVICE_OUTPUTS;

/** The example orders service. */
export class StrataStack extends Stack {
  /** The service. */
  readonly service: EventSourcedService;

  constructor(scope: Construct, id: string, props: StrataStackProps) {
    super(scope, id, props);
    this.service = new EventSourcedService(this, 'Orders', {
      code: props.code,
      aggregates: ['order'],
      projections: ['order-summary'],
      eventSource: props.eventSource,
      tenancy: props.tenancy ?? { fixed: 'demo' },
      auth: props.auth ?? { iam: true },
      tenantIsolation: props.tenantIsolation,
      streamCacheEntries: props.streamCacheEntries,
      commitFormat: props.commitFormat,
      snapshotKeep: props.snapshotKeep,
      removalPolicy: props.retainData === false ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
    this.service.addOutputs();
  }
}

/** The EventBridge source of the example service. */
export const EXAMPLE_EVENT_SOURCE = 'com.example.orders';

/** Where the emulator's template is committed (generated; `STRATA_BLESS=1 npm test` rewrites it). */
export const EMULATOR_TEMPLATE_FILE = path.join(__dirname, '..', 'emulator-template.json');

function exampleApp(props: Partial<StrataStackProps>): { app: App; stack: StrataStack } {
  const app = new App({ context: cdkContext() });
  const stack = new StrataStack(app, 'Strata', { code: placeholderCode(), eventSource: EXAMPLE_EVENT_SOURCE, ...props });
  return { app, stack };
}

/** The example stack's template as synthesized with placeholder code (no zips needed). */
export function synthesizeExample(props: Partial<StrataStackProps> = {}): Record<string, unknown> {
  const { app, stack } = exampleApp(props);
  return synthesize(app, stack);
}

/** The emulator's template of the example stack, as committed in `infra/emulator-template.json`. */
export function exampleEmulatorTemplate(): string {
  const { app, stack } = exampleApp({});
  return synthesizeEmulatorTemplate(app, stack);
}

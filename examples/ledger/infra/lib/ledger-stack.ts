// The ledger service (examples/ledger) on AWS: its two aggregates and two read models behind one
// HTTP API, and the transfer process as a consumer that sends commands. Every function runs the
// ledger's one binary (`ledger-service`), told its part by STRATA_ROLE.
import { RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import * as path from 'node:path';
import { EventSourcedService, type FunctionCode, loadEventDocument } from 'strata-cdk';

/** Properties of {@link LedgerStack}. */
export interface LedgerStackProps extends StackProps {
  /** The ledger's code (`serviceFromZip` of the `ledger-service` zip, or `placeholderCode()` to synthesize only). */
  readonly code: FunctionCode;
  /** The one tenant (default `acme`). */
  readonly tenant?: string;
  /** Keep data on stack deletion (default true). */
  readonly retainData?: boolean;
}

/** The EventBridge source of the ledger's events. */
export const LEDGER_EVENT_SOURCE = 'com.example.ledger';

/** The ledger service and its outputs. */
export class LedgerStack extends Stack {
  /** The service. */
  readonly service: EventSourcedService;

  constructor(scope: Construct, id: string, props: LedgerStackProps) {
    super(scope, id, props);
    this.service = new EventSourcedService(this, 'Ledger', {
      code: props.code,
      aggregates: ['account', 'transfer'],
      projections: ['balance', 'transfer-status', 'activity'],
      eventSource: LEDGER_EVENT_SOURCE,
      tenancy: { fixed: props.tenant ?? 'acme' },
      auth: { iam: true },
      removalPolicy: props.retainData === false ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
      // Generated from the ledger's event types (`Service::event_document`; tests/tests/contracts.rs).
      eventContracts: loadEventDocument(path.join(__dirname, '..', '..', 'events.schema.json')),
    });
    // The process moves money between accounts (commands to both aggregates): only transfers'
    // requests start it (`TransferProcess` acts on nothing else).
    this.service.addConsumer('transfer-process', {
      issuesCommands: true,
      eventPattern: { detailType: ['TransferRequested'] },
    });
    this.service.addOutputs();
  }
}

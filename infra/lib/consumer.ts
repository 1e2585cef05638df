// A consumer of a service's events: side effects (email, webhooks, another service) or a process
// manager that sends commands. The team's code runs `strata_eventbridge::Effects` over its
// `Consumer`: each event's effect between a claim record and a done record in the table, so
// EventBridge's and SQS's at-least-once delivery becomes one effect per event.
//
//   bus ─rule (pattern)─► queue (DLQ) ─► consumer function (STRATA_ROLE=consumer, STRATA_CONSUMER=name)
import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { grantFieldKey, grantTableKey, type TableAccess } from './access';
import { onlySenders } from './security';
import { checkNames, checkQueueConcurrency, feedFromBus, type QueueSettings } from './wiring';
import { type FunctionSettings, StrataFunction } from './strata-function';

/** What {@link EventSourcedService.addConsumer} takes. */
export interface ConsumerProps {
  /**
   * Which events (an EventBridge pattern on the service's bus), e.g.
   * `{ detailType: ['TransferRequested'] }`. Its `source` defaults to the service's. Default: every
   * event of the service.
   */
  readonly eventPattern?: events.EventPattern;
  /** Its code. Default: the service's code for role `consumer` (its one binary). */
  readonly code?: lambda.Code;
  /**
   * It sends commands to the service's aggregates (a process manager): its role may also commit to
   * streams and create subjects' data keys, as the command function may. Default false.
   */
  readonly issuesCommands?: boolean;
  /**
   * The claim lease of its `Effects` (`Effects::with_lease`; default 120 s, `DEFAULT_LEASE_SECS`),
   * passed as `STRATA_CONSUMER_LEASE_SECS`: the runtime refuses to start when the code's lease is
   * another. The function's timeout may not exceed it (a claim must outlive the attempt that holds
   * it), and a failed message is seen again only after it (the queue's visibility timeout covers it).
   */
  readonly lease?: Duration;
  /** Memory (default 256 MB), timeout (default 30 s) and reserved concurrency. */
  readonly functionSettings?: FunctionSettings;
  /** Its queue and event source mapping. */
  readonly queue?: QueueSettings;
  /** More environment for the team's own settings (a webhook URL, say; never a secret; no `STRATA_*`). */
  readonly environment?: Record<string, string>;
}

/** What the service hands the consumer it wires. */
export interface ServiceConsumerProps extends ConsumerProps {
  readonly name: string;
  readonly code: lambda.Code;
  readonly bus: events.IEventBus;
  readonly eventSource: string;
  readonly access: TableAccess;
  readonly tableKey: kms.IKey;
  readonly fieldKey: kms.IKey;
  readonly isolatedTenant: string | undefined;
  /** What every function of the service reads (table, key, commit format). */
  readonly serviceEnvironment: Record<string, string>;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  readonly alarmAction?: cloudwatch.IAlarmAction;
  readonly deliveryDeadLetters: sqs.IQueue;
  /** Operators, who may send to its queue besides its rule (a redrive). */
  readonly operators: readonly string[];
}

/** A consumer's rule, queue, dead-letter queue and function. */
export class ServiceConsumer extends Construct {
  /** Its name (`Consumer::NAME`, `STRATA_CONSUMER`). */
  readonly name: string;
  /** Its function. */
  readonly function: StrataFunction;
  /** Its queue. */
  readonly queue: sqs.Queue;
  /** Messages it failed `maxReceiveCount` times. */
  readonly deadLetters: sqs.Queue;
  /** The rule that feeds its queue. */
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: ServiceConsumerProps) {
    checkConsumer(props.name, props, props.eventSource);
    super(scope, id);
    this.name = props.name;
    const lease = props.lease ?? Duration.seconds(120);
    const timeout = props.functionSettings?.timeout ?? Duration.seconds(30);
    this.function = new StrataFunction(this, 'Function', {
      role: `consumer ${props.name}`,
      code: props.code,
      description: `Strata consumer ${props.name}: one effect per event`,
      environment: {
        ...props.environment,
        ...props.serviceEnvironment,
        STRATA_ROLE: 'consumer',
        STRATA_CONSUMER: props.name,
        STRATA_CONSUMER_LEASE_SECS: String(lease.toSeconds()),
      },
      timeout,
      memorySize: props.functionSettings?.memorySize ?? 256,
      reservedConcurrency: props.functionSettings?.reservedConcurrency,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
      alarmAction: props.alarmAction,
    });
    const fn = this.function.function;
    // Effect records (claim, done) are idempotency items: read, written, and a failed claim released.
    props.access.read(fn, []);
    props.access.put(fn, props.issuesCommands ? ['stream', 'data_key', 'idempotency'] : ['idempotency']);
    props.access.delete(fn, ['idempotency']);
    grantTableKey(props.tableKey, fn, true);
    grantFieldKey(props.fieldKey, fn, props.issuesCommands ?? false, props.isolatedTenant);
    // Visibility: Lambda's six times the timeout, and never before the lease of a crashed attempt's
    // claim has run out (else the redelivery finds the claim held and burns a receive).
    const visibility = Math.max(timeout.toSeconds() * 6, lease.toSeconds() + timeout.toSeconds());
    const fed = feedFromBus(this, 'Feed', {
      bus: props.bus,
      pattern: { ...(props.eventPattern ?? {}), source: [props.eventSource] },
      description: `Events of ${props.eventSource} to the consumer ${props.name}`,
      fn,
      settings: props.queue ?? {},
      visibility: Duration.seconds(visibility),
      deliveryDeadLetters: props.deliveryDeadLetters,
    });
    this.queue = fed.queue;
    this.deadLetters = fed.deadLetters;
    this.rule = fed.rule;
    onlySenders(fed.queue, { rules: () => [fed.rule.ruleArn], principals: () => [...props.operators] });
    onlySenders(fed.deadLetters, { principals: () => [...props.operators] });
  }
}

/** Refuses, before anything is created, a consumer the runtime or the queue would trip over. */
export function checkConsumer(name: string, props: ConsumerProps, eventSource: string): void {
  checkNames('consumer', [name]);
  checkQueueConcurrency(`consumer '${name}'`, props.functionSettings?.reservedConcurrency, props.queue ?? {});
  const given = props.eventPattern?.source;
  if (given !== undefined && !(given.length === 1 && given[0] === eventSource)) {
    throw new Error(
      `consumer '${name}': eventPattern.source ${JSON.stringify(given)}: the service's bus carries ${eventSource} only (omit source)`,
    );
  }
  const lease = props.lease ?? Duration.seconds(120);
  const timeout = props.functionSettings?.timeout ?? Duration.seconds(30);
  if (timeout.toSeconds() > lease.toSeconds()) {
    throw new Error(
      `consumer '${name}': timeout ${timeout.toSeconds()} s exceeds its lease ${lease.toSeconds()} s: a second delivery could run the effect while the first still does`,
    );
  }
  for (const key of Object.keys(props.environment ?? {})) {
    if (key.startsWith('STRATA_')) {
      throw new Error(`consumer '${name}': environment ${key} is the construct's to set (STRATA_* configures the runtime and the function's role)`);
    }
  }
}

// What the service and its consumers share: the names they accept, and queues fed by the bus.
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/** Settings of a queue-fed function's (the projector's, a consumer's) queue and event source mapping. */
export interface QueueSettings {
  /** Messages per invocation (default 10). */
  readonly batchSize?: number;
  /** Receives before a message moves to the dead-letter queue (default 5). */
  readonly maxReceiveCount?: number;
  /**
   * The most instances the queue's mapping runs at once (2 to 1000; default 5, {@link DEFAULT_MAX_CONCURRENCY}).
   */
  readonly maxConcurrency?: number;
}

/**
 * The default `maxConcurrency` of a queue's mapping: without one, Lambda scales a queue's pollers to
 * 1,250 instances, as many writers on the table (views, effect records) and callers of whatever a
 * consumer calls. Five instances of ten messages keep up with hundreds of events a second; a
 * service that needs more says so.
 */
export const DEFAULT_MAX_CONCURRENCY = 5;

/**
 * A read model's or consumer's name (`Projection::NAME`, `Consumer::NAME`): a path segment of the
 * HTTP API or an environment value, 1 to 64 URL-safe characters.
 */
export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * An aggregate category (`Aggregate::CATEGORY`): as {@link NAME_PATTERN} without `-`, which
 * `StreamId` refuses (the partition key joins category and id with `-`).
 */
export const CATEGORY_PATTERN = /^[A-Za-z0-9_.]{1,64}$/;

/** Path segments of routes of their own (the query API's `RESERVED`): no aggregate may take them. */
export const RESERVED_CATEGORIES: readonly string[] = ['views', 'admin'];

/** Refuses a name the Rust side or a route would refuse, and a name listed twice. */
export function checkNames(what: string, names: readonly string[], pattern: RegExp = NAME_PATTERN): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (!pattern.test(name)) {
      const allowed = pattern === CATEGORY_PATTERN ? 'A-Z a-z 0-9 _ . (no -: StreamId refuses it)' : 'A-Z a-z 0-9 _ . -';
      throw new Error(`${what} '${name}': use 1 to 64 of ${allowed}`);
    }
    if (seen.has(name)) throw new Error(`${what} '${name}' is listed twice`);
    seen.add(name);
  }
}

/** A name as a construct id part: `transfer-process` → `TransferProcess`. */
export function pascal(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}

/**
 * Refuses reserved concurrency a queue's event source mapping would be throttled by: Lambda polls
 * with at least five instances (or `maxConcurrency`), and a throttled receive still counts toward
 * the message's `maxReceiveCount`, sending it to the dead-letter queue.
 */
export function checkQueueConcurrency(what: string, reserved: number | undefined, queue: QueueSettings): void {
  const needed = queue.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  if (reserved !== undefined && reserved < needed) {
    throw new Error(
      `${what}: reservedConcurrency ${reserved} is below ${queue.maxConcurrency !== undefined ? `maxConcurrency ${needed}` : `the queue mapping's default maxConcurrency ${needed}`}: throttled receives would send messages to the dead-letter queue (set maxConcurrency at most ${reserved}, or reserve more)`,
    );
  }
}

/** Refuses queue settings SQS or Lambda would refuse at deploy time. */
export function checkQueue(what: string, settings: QueueSettings): void {
  const { batchSize, maxReceiveCount, maxConcurrency } = settings;
  if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= 10)) {
    throw new Error(`${what}: batchSize ${batchSize}: use 1 to 10 (a larger batch needs a batching window)`);
  }
  if (maxReceiveCount !== undefined && !(Number.isInteger(maxReceiveCount) && maxReceiveCount >= 1 && maxReceiveCount <= 1000)) {
    throw new Error(`${what}: maxReceiveCount ${maxReceiveCount}: use 1 to 1000`);
  }
  if (maxConcurrency !== undefined && !(Number.isInteger(maxConcurrency) && maxConcurrency >= 2 && maxConcurrency <= 1000)) {
    throw new Error(`${what}: maxConcurrency ${maxConcurrency}: use 2 to 1000`);
  }
}

/** An SQS queue as every queue of the service is made: encrypted, TLS only, 14 days' retention. */
export function serviceQueue(scope: Construct, id: string, extra: Partial<sqs.QueueProps> = {}): sqs.Queue {
  return new sqs.Queue(scope, id, {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
    ...extra,
  });
}

/** A queue (with its dead-letter queue) fed by a rule on the bus, read by a function. */
export function feedFromBus(
  scope: Construct,
  id: string,
  props: {
    readonly bus: events.IEventBus;
    readonly pattern: events.EventPattern;
    readonly description: string;
    readonly fn: lambda.IFunction;
    readonly settings: QueueSettings;
    readonly visibility: Duration;
    readonly deliveryDeadLetters: sqs.IQueue;
  },
): { queue: sqs.Queue; deadLetters: sqs.Queue; rule: events.Rule } {
  checkQueue(id, props.settings);
  const deadLetters = serviceQueue(scope, `${id}DeadLetters`);
  const queue = serviceQueue(scope, `${id}Queue`, {
    visibilityTimeout: props.visibility,
    deadLetterQueue: { queue: deadLetters, maxReceiveCount: props.settings.maxReceiveCount ?? 5 },
  });
  const rule = new events.Rule(scope, `To${id}`, {
    eventBus: props.bus,
    description: props.description,
    eventPattern: props.pattern,
    targets: [
      new targets.SqsQueue(queue, {
        deadLetterQueue: props.deliveryDeadLetters,
        retryAttempts: 185,
        maxEventAge: Duration.hours(24),
      }),
    ],
  });
  props.fn.addEventSource(
    new sources.SqsEventSource(queue, {
      batchSize: props.settings.batchSize ?? 10,
      reportBatchItemFailures: true,
      maxConcurrency: props.settings.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY,
    }),
  );
  return { queue, deadLetters, rule };
}

// EventSourcedService: everything one Strata service needs on AWS, wired as the Rust side expects.
//
//   HTTP API ─► command-api ─► table (TableSpec) ─stream─► stream-publisher ─► bus ─rule─► queue ─► projector
//            ─► query-api   ─┘        ▲                     (bisect, bounded       │ archive    (DLQ)   │
//            ─► query-admin ─┘        └──────────────────── retries, on-failure)   └─ rule DLQ          ▼
//                                                                                              views in the table
import { Aws, Duration, Names, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { grantFieldKey, grantTableKey, TableAccess } from './access';
import { type FunctionCode, StrataFunction } from './strata-function';
import { EventStoreTable, loadTableSpec, type TableSpec } from './table-spec';

/** Whose data a request touches: one tenant per deployment, or the tenant named by a JWT claim. */
export type Tenancy = { readonly fixed: string } | { readonly claim: string };

/** How callers of the HTTP API authenticate. */
export type ApiAuth =
  | {
      /** AWS SigV4 (IAM). Grant `execute-api:Invoke` per route; admin routes are separate ARNs. */
      readonly iam: true;
    }
  | {
      /** A JWT issuer (Cognito user pool, Auth0, ...): tokens are verified by API Gateway. */
      readonly jwt: {
        readonly issuer: string;
        readonly audience: readonly string[];
        /** The OAuth scope the admin routes require (default `strata/admin`). */
        readonly adminScope?: string;
      };
    };

/** Settings of the stream → EventBridge publisher's event source mapping. */
export interface PublisherSettings {
  /** Records per invocation (default 100). */
  readonly batchSize?: number;
  /**
   * Retries of a failing batch before its metadata goes to the on-failure queue (default 1000, bisected
   * each time): bounded, so a record the publisher cannot relay does not hold its shard past
   * `maxRecordAge`, and high, so an EventBridge outage of hours does not divert committed events.
   */
  readonly retryAttempts?: number;
  /** Records older than this go to the on-failure queue (default 24 hours, the stream's retention). */
  readonly maxRecordAge?: Duration;
}

/** Settings of the projector's queue. */
export interface ProjectorSettings {
  /** Messages per invocation (default 10). */
  readonly batchSize?: number;
  /** Receives before a message moves to the dead-letter queue (default 5). */
  readonly maxReceiveCount?: number;
}

/** Properties of {@link EventSourcedService}. */
export interface EventSourcedServiceProps {
  /** Where each function's code comes from (see `functionsFromZips`). */
  readonly code: FunctionCode;
  /** The EventBridge `source` of published events (`STRATA_EVENT_SOURCE`), e.g. `com.example.orders`. */
  readonly eventSource: string;
  /** Tenancy of the command and query functions. */
  readonly tenancy: Tenancy;
  /** Authentication of the HTTP API. */
  readonly auth: ApiAuth;
  /**
   * Confine every function's table access to the fixed tenant's items with `dynamodb:LeadingKeys`
   * (and KMS use to its encryption context). Needs `tenancy: { fixed }`. Default false.
   */
  readonly tenantIsolation?: boolean;
  /** Deploy the admin function (subject export and forget) behind admin-only routes. Default true. */
  readonly admin?: boolean;
  /** The table shape (default: `infra/table-spec.json`, exported from Rust). */
  readonly tableSpec?: TableSpec;
  /** Snapshot every N events (`STRATA_SNAPSHOT_EVERY`, default 100). */
  readonly snapshotEvery?: number;
  /**
   * Snapshots kept per stream (`STRATA_SNAPSHOT_KEEP` of the stream publisher, which prunes the
   * older ones when a snapshot is written; default 2, at least 1).
   */
  readonly snapshotKeep?: number;
  /**
   * Streams whose state a warm command function keeps in memory (`STRATA_STREAM_CACHE_ENTRIES`,
   * default 1000; 0 turns the cache off). A command on a cached stream is one conditional write and
   * no read; memory is this many aggregate states at most, each kept five minutes at most.
   */
  readonly streamCacheEntries?: number;
  /**
   * The item format the command function writes commits in (`STRATA_COMMIT_FORMAT`, default `v3`).
   * `v2` (or `legacy`) is for the first deploy of an upgrade from a version that cannot read v3 items
   * (or reads only legacy ones); deploy again without it once every function runs the new code. Every
   * format is always read.
   */
  readonly commitFormat?: 'v3' | 'v2' | 'legacy';
  /** Publisher event source mapping. */
  readonly publisher?: PublisherSettings;
  /** Projector queue. */
  readonly projector?: ProjectorSettings;
  /** How long the bus archive keeps events for replay (default 365 days). */
  readonly archiveRetention?: Duration;
  /** Log retention of every function and of the API access log (default one month). */
  readonly logRetention?: logs.RetentionDays;
  /** Table, keys and log groups on stack deletion (default RETAIN; DESTROY for throwaway stacks). */
  readonly removalPolicy?: RemovalPolicy;
  /** Where alarms notify (an SNS topic action, say). Default: alarms without actions. */
  readonly alarmAction?: cloudwatch.IAlarmAction;
}

/** The event store table, keys, bus, queues, functions, HTTP API and alarms of one Strata service. */
export class EventSourcedService extends Construct {
  /** The event store table. */
  readonly table: dynamodb.Table;
  /** Encrypts the table, its indexes and its stream at rest. */
  readonly tableKey: kms.Key;
  /** Wraps the per-subject data keys that seal personal fields (`STRATA_KMS_KEY_ID`). */
  readonly fieldKey: kms.Key;
  /** The bus events are published to. */
  readonly bus: events.EventBus;
  /** The projector's queue (fed by a rule on the bus). */
  readonly projectorQueue: sqs.Queue;
  /** Messages the projector failed `maxReceiveCount` times. */
  readonly projectorDeadLetters: sqs.Queue;
  /** Events the rule could not deliver to the projector's queue. */
  readonly deliveryDeadLetters: sqs.Queue;
  /** Stream batches the publisher gave up on (metadata to replay them from the table). */
  readonly publisherFailures: sqs.Queue;
  /** The functions, by name. */
  readonly functions: {
    readonly commandApi: StrataFunction;
    readonly queryApi: StrataFunction;
    readonly queryAdmin?: StrataFunction;
    readonly streamPublisher: StrataFunction;
    readonly projector: StrataFunction;
  };
  /** The HTTP API. */
  readonly api: apigw.HttpApi;
  /** Every alarm of the service. */
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: EventSourcedServiceProps) {
    super(scope, id);
    const spec = props.tableSpec ?? loadTableSpec();
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const fixedTenant = 'fixed' in props.tenancy ? props.tenancy.fixed : undefined;
    const cacheEntries = props.streamCacheEntries;
    if (cacheEntries !== undefined && (!Number.isSafeInteger(cacheEntries) || cacheEntries < 0)) {
      throw new Error(`streamCacheEntries ${cacheEntries}: use a whole number of streams, 0 to turn the cache off`);
    }
    if (props.commitFormat !== undefined && !['v3', 'v2', 'legacy'].includes(props.commitFormat)) {
      throw new Error(`commitFormat ${JSON.stringify(props.commitFormat)}: use v3, v2 or legacy`);
    }
    const keep = props.snapshotKeep;
    if (keep !== undefined && !(Number.isInteger(keep) && keep >= 1)) {
      throw new Error(`snapshotKeep ${keep}: keep at least 1 snapshot per stream, a whole number`);
    }
    if (props.tenantIsolation && !fixedTenant) {
      throw new Error('tenantIsolation needs tenancy { fixed }: one role cannot be confined to a tenant named per request');
    }
    if ('iam' in props.auth && !fixedTenant) {
      throw new Error('tenancy { claim } needs JWT auth: IAM-authorized requests carry no JWT claims');
    }
    if (fixedTenant !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(fixedTenant)) {
      // The tenant goes into IAM StringLike patterns (where * and ? are wildcards) and into keys.
      throw new Error(`tenant '${fixedTenant}': use 1 to 64 of A-Z a-z 0-9 . _ -`);
    }
    const isolatedTenant = props.tenantIsolation ? fixedTenant : undefined;

    // Keys: the table key is usable only through DynamoDB; the field key unwraps personal data and is
    // granted to the functions that open it, never to the publisher.
    this.tableKey = new kms.Key(this, 'TableKey', {
      description: 'Encrypts the Strata event store table, its indexes and stream at rest',
      enableKeyRotation: true,
      removalPolicy,
    });
    this.fieldKey = new kms.Key(this, 'FieldKey', {
      description: 'Wraps the per-subject data keys that seal personal fields (crypto-shredding)',
      enableKeyRotation: true,
      removalPolicy,
    });
    this.table = new EventStoreTable(this, 'EventStore', { spec, encryptionKey: this.tableKey, removalPolicy }).table;
    const access = new TableAccess(this.table, spec, isolatedTenant);

    // Publishing: bus with an archive for replay, a rule to the projector's queue with its own DLQ.
    // A bus needs a name; CDK's default is the same in every stack made from the template, so two stacks
    // (two stages in one account, two tests in one emulator) would collide. The stack name tells them apart.
    this.bus = new events.EventBus(this, 'Bus', {
      eventBusName: `${Aws.STACK_NAME}-${Names.uniqueId(this)}`,
      description: `Events of ${props.eventSource}`,
    });
    this.bus.archive('Archive', {
      description: `Every event of ${props.eventSource}, for replay`,
      eventPattern: { source: [props.eventSource] },
      retention: props.archiveRetention ?? Duration.days(365),
    });
    const queue = (queueId: string, extra: Partial<sqs.QueueProps> = {}) =>
      new sqs.Queue(this, queueId, {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
        ...extra,
      });
    this.publisherFailures = queue('PublisherFailures');
    this.deliveryDeadLetters = queue('DeliveryDeadLetters');
    Validations.of(this.publisherFailures).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: "The stream event source mapping's on-failure destination: a dead-letter queue itself (alarmed).",
    });
    Validations.of(this.deliveryDeadLetters).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: "The EventBridge rule target's dead-letter queue: a dead-letter queue itself (alarmed).",
    });
    this.projectorDeadLetters = queue('ProjectorDeadLetters');
    const projectorTimeout = Duration.seconds(60);
    this.projectorQueue = queue('ProjectorQueue', {
      // Lambda's guidance: at least six times the function timeout, so retries do not overlap.
      visibilityTimeout: Duration.seconds(projectorTimeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.projectorDeadLetters, maxReceiveCount: props.projector?.maxReceiveCount ?? 5 },
    });
    new events.Rule(this, 'ToProjector', {
      eventBus: this.bus,
      description: 'Every event of the service to the projector',
      eventPattern: { source: [props.eventSource] },
      targets: [
        new targets.SqsQueue(this.projectorQueue, {
          deadLetterQueue: this.deliveryDeadLetters,
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
        }),
      ],
    });

    // Functions.
    const common = {
      code: props.code,
      logRetention,
      removalPolicy,
      alarmAction: props.alarmAction,
    };
    const tenancyEnv: Record<string, string> =
      'fixed' in props.tenancy ? { STRATA_TENANT: props.tenancy.fixed } : { STRATA_TENANT_CLAIM: props.tenancy.claim };
    const storeEnv = { STRATA_TABLE: this.table.tableName, STRATA_KMS_KEY_ID: this.fieldKey.keyArn };
    const apiFunction = (
      fnId: string,
      name: 'command-api' | 'query-api',
      description: string,
      env = {},
      timeout = Duration.seconds(10),
    ) =>
      new StrataFunction(this, fnId, {
        ...common,
        name,
        description,
        environment: { ...storeEnv, ...tenancyEnv, ...env },
        timeout,
        memorySize: 256,
      });

    // 20 s: the repository's default RetryPolicy retries conflicts for up to 16 s (API Gateway's
    // integration timeout is 30 s).
    const commandApi = apiFunction(
      'CommandApi',
      'command-api',
      'Strata commands: POST /{category}/{id}/commands/{name}',
      {
        STRATA_SNAPSHOT_EVERY: String(props.snapshotEvery ?? 100),
        STRATA_STREAM_CACHE_ENTRIES: String(props.streamCacheEntries ?? 1000),
        // The stream publisher prunes old snapshots (below): off the command path.
        STRATA_SNAPSHOT_PRUNING: 'publisher',
        ...(props.commitFormat ? { STRATA_COMMIT_FORMAT: props.commitFormat } : {}),
      },
      Duration.seconds(20),
    );
    access.read(commandApi.function, []);
    access.put(commandApi.function, ['stream', 'data_key', 'idempotency']);
    grantTableKey(this.tableKey, commandApi.function, true);
    grantFieldKey(this.fieldKey, commandApi.function, true, isolatedTenant);

    const queryApi = apiFunction('QueryApi', 'query-api', 'Strata queries: state, events, views', {
      STRATA_ADMIN: 'false',
      // The command side's interval: above 0, loads start from its snapshots.
      STRATA_SNAPSHOT_EVERY: String(props.snapshotEvery ?? 100),
    });
    access.read(queryApi.function, ['lookup', 'snapshots']); // view listings; ?at= from a snapshot
    grantTableKey(this.tableKey, queryApi.function, false);
    grantFieldKey(this.fieldKey, queryApi.function, false, isolatedTenant);

    let queryAdmin: StrataFunction | undefined;
    if (props.admin ?? true) {
      queryAdmin = apiFunction('QueryAdmin', 'query-api', 'Strata admin: subject export and forget', {
        STRATA_ADMIN: 'true',
      });
      access.read(queryAdmin.function, []);
      access.delete(queryAdmin.function, ['data_key']); // forget = delete the subject's data key
      grantTableKey(this.tableKey, queryAdmin.function, true);
      grantFieldKey(this.fieldKey, queryAdmin.function, false, isolatedTenant);
    }

    const streamPublisher = new StrataFunction(this, 'StreamPublisher', {
      ...common,
      name: 'stream-publisher',
      description: 'Relays committed events from the table stream to EventBridge',
      environment: {
        STRATA_EVENT_BUS: this.bus.eventBusName,
        STRATA_EVENT_SOURCE: props.eventSource,
        // Pruning each stream's snapshots when one is written, off the command path.
        STRATA_TABLE: this.table.tableName,
        STRATA_SNAPSHOT_KEEP: String(props.snapshotKeep ?? 2),
      },
      timeout: Duration.seconds(60),
      memorySize: 256,
      extraWildcardReason: 'dynamodb:ListStreams (added by the event source mapping) has no resource-level permissions.',
    });
    this.bus.grantPutEventsTo(streamPublisher.function);
    // Pruning a stream's old snapshots: a Query of the snapshots index (keys only) and conditional
    // deletes in stream partitions; nothing else of the table.
    access.queryIndex(streamPublisher.function, 'snapshots', ['stream']);
    access.delete(streamPublisher.function, ['stream']);
    grantTableKey(this.tableKey, streamPublisher.function, true);
    streamPublisher.function.addEventSource(
      new sources.DynamoEventSource(this.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: props.publisher?.batchSize ?? 100,
        bisectBatchOnError: true,
        retryAttempts: props.publisher?.retryAttempts ?? 1000,
        maxRecordAge: props.publisher?.maxRecordAge ?? Duration.hours(24),
        reportBatchItemFailures: true,
        onFailure: new sources.SqsDlq(this.publisherFailures),
        // Only new commits (to publish) and new snapshots (to prune a stream's older ones) invoke the
        // publisher: writes of views, keys and idempotency records (and TTL removals) would otherwise
        // each cost an invocation that does nothing. Filters are OR'ed.
        filters: [spec.published_kind, spec.snapshot_kind].map((kind) =>
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('INSERT'),
            dynamodb: { NewImage: { [spec.kind_attribute]: { S: lambda.FilterRule.isEqual(kind) } } },
          }),
        ),
      }),
    );

    const projector = new StrataFunction(this, 'Projector', {
      ...common,
      name: 'projector',
      description: 'Applies published events to read-model views',
      environment: storeEnv,
      timeout: projectorTimeout,
      memorySize: 256,
    });
    access.read(projector.function, []);
    access.put(projector.function, ['view']);
    grantTableKey(this.tableKey, projector.function, true);
    grantFieldKey(this.fieldKey, projector.function, false, isolatedTenant);
    projector.function.addEventSource(
      new sources.SqsEventSource(this.projectorQueue, {
        batchSize: props.projector?.batchSize ?? 10,
        reportBatchItemFailures: true,
      }),
    );
    this.functions = { commandApi, queryApi, queryAdmin, streamPublisher, projector };

    // HTTP API: commands and queries to their functions; admin routes to the admin function only.
    this.api = new apigw.HttpApi(this, 'Api', {
      description: `HTTP API of ${props.eventSource}`,
      createDefaultStage: false,
    });
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', { retention: logRetention, removalPolicy });
    this.api.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: 100, burstLimit: 200 },
      accessLogSettings: { destination: new apigw.LogGroupLogDestination(accessLogs) },
    });
    const [authorizer, adminAuthorizer, adminScopes] =
      'iam' in props.auth
        ? [new HttpIamAuthorizer(), new HttpIamAuthorizer(), undefined]
        : (() => {
            const jwt = props.auth.jwt;
            const make = (name: string) =>
              new HttpJwtAuthorizer(name, jwt.issuer, { jwtAudience: [...jwt.audience] });
            return [make('Jwt'), make('AdminJwt'), [jwt.adminScope ?? 'strata/admin']] as const;
          })();
    const route = (path: string, methods: apigw.HttpMethod[], fn: StrataFunction, admin = false) =>
      this.api.addRoutes({
        path,
        methods,
        integration: new HttpLambdaIntegration(`${fn.node.id}Integration`, fn.function),
        authorizer: admin ? adminAuthorizer : authorizer,
        authorizationScopes: admin ? adminScopes && [...adminScopes] : undefined,
      });
    route('/{category}/{id}/commands/{name}', [apigw.HttpMethod.POST], commandApi);
    route('/{proxy+}', [apigw.HttpMethod.GET], queryApi);
    if (queryAdmin) {
      route('/admin/subjects/{subject}/export', [apigw.HttpMethod.GET], queryAdmin, true);
      route('/admin/subjects/{subject}', [apigw.HttpMethod.DELETE], queryAdmin, true);
    }

    // Alarms: anything in a dead-letter queue, any function error, a publisher falling behind.
    const depth = (alarmId: string, q: sqs.Queue, what: string) =>
      this.alarm(
        q.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }).createAlarm(this, alarmId, {
          alarmDescription: what,
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
        props.alarmAction,
      );
    depth('PublisherFailuresAlarm', this.publisherFailures, 'Stream batches the publisher gave up on: replay them from the table');
    depth('DeliveryDeadLettersAlarm', this.deliveryDeadLetters, 'Events EventBridge could not deliver to the projector queue');
    depth('ProjectorDeadLettersAlarm', this.projectorDeadLetters, 'Messages the projector failed repeatedly (poison events)');
    for (const fn of [commandApi, queryApi, queryAdmin, streamPublisher, projector]) {
      if (fn) this.alarms.push(fn.errorsAlarm);
    }
    this.alarm(
      streamPublisher.function
        .metric('IteratorAge', { period: Duration.minutes(1), statistic: 'Maximum' })
        .createAlarm(this, 'PublisherIteratorAgeAlarm', {
          alarmDescription: 'The publisher is more than 5 minutes behind the table stream (records expire after 24 hours)',
          threshold: Duration.minutes(5).toMilliseconds(),
          evaluationPeriods: 3,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      props.alarmAction,
    );
    this.alarm(
      this.api.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' }).createAlarm(this, 'ApiServerErrorsAlarm', {
        alarmDescription: 'The HTTP API answered 5xx',
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      props.alarmAction,
    );
  }

  private alarm(alarm: cloudwatch.Alarm, action: cloudwatch.IAlarmAction | undefined): void {
    if (action) alarm.addAlarmAction(action);
    this.alarms.push(alarm);
  }
}

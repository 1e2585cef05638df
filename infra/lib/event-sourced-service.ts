// EventSourcedService: everything one Strata service needs on AWS, wired as the Rust side expects.
//
//   HTTP API ─► command ─► table (TableSpec) ─stream─► publisher ─► bus ─rule─► queue ─► projector
//            ─► query   ─┘        ▲                (bisect, bounded   │ archive    (DLQ)   │
//            ─► admin   ─┘        └─────────────── retries, on-failure)├─ rule DLQ          ▼
//                                                                     │             views in the table
//                                             addConsumer(name, ...) └─rule─► queue ─► consumer (effects)
//
// Every function runs the team's code (one `strata_lambda::runtime::serve` binary for all, told its
// part by STRATA_ROLE, or code per role), with its own least-privilege role.
import { Aws, CfnOutput, Duration, Fn, Names, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { grantFieldKey, grantTableKey, TableAccess } from './access';
import { checkConsumer, ServiceConsumer, type ConsumerProps } from './consumer';
import { EventContracts, type EventDocument } from './contracts';
import { type ApiAuth, apiScopes, type ApiThrottle, type ApiThrottles, type RouteKind, ServiceApis } from './http-api';
import { fieldKey, keyChangeAlarm, onlyPutters, onlySenders, type ServiceSecurityProps } from './security';
import {
  CATEGORY_PATTERN,
  checkNames,
  checkQueue,
  checkQueueConcurrency,
  feedFromBus,
  pascal,
  type QueueSettings,
  RESERVED_CATEGORIES,
  serviceQueue,
} from './wiring';
import type { FunctionCode, FunctionRole } from './function-code';
import { checkSettings, type FunctionSettings, StrataFunction } from './strata-function';
import { EventStoreTable, loadTableSpec, type TableSpec } from './table-spec';

/** Whose data a request touches: one tenant per deployment, or the tenant named by a JWT claim. */
export type Tenancy =
  | { readonly fixed: string }
  | {
      /**
       * The verified JWT's claim that names the tenant (`STRATA_TENANT_CLAIM`). It must be one the
       * issuer sets and the user cannot write: a claim added by a pre-token-generation trigger (see
       * infra/README.md), not a Cognito custom attribute the app client may write. Claims users can
       * usually write (`custom:*`, OIDC profile claims such as `email`) are refused unless
       * `claimSetBy: 'issuer'` says the issuer overrides them in every token.
       */
      readonly claim: string;
      /** The only tenants the claim may name (`STRATA_TENANT_ALLOWED`); any other gets 403. Default: any. */
      readonly allowed?: readonly string[];
      /** The issuer sets the claim in every token, whatever the user wrote (a pre-token-generation trigger's override). */
      readonly claimSetBy?: 'issuer';
    };

/** Claims a user can usually write for themselves: a tenant taken from one is chosen by the caller. */
export const USER_WRITABLE_CLAIMS: readonly string[] = [
  'address', 'birthdate', 'email', 'family_name', 'gender', 'given_name', 'locale', 'middle_name', 'name',
  'nickname', 'phone_number', 'picture', 'preferred_username', 'profile', 'website', 'zoneinfo',
];

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

/** The projector's queue (see {@link QueueSettings}). */
export type ProjectorSettings = QueueSettings;

/** The tunables of each function (defaults in parentheses). */
export interface ServiceFunctionSettings {
  /** The command function (256 MB, 20 s: the repository retries a conflict for up to 16 s). */
  readonly command?: FunctionSettings;
  /** The query function (256 MB, 10 s). */
  readonly query?: FunctionSettings;
  /** The admin function (256 MB, 10 s). */
  readonly admin?: FunctionSettings;
  /** The projector (256 MB, 60 s). */
  readonly projector?: FunctionSettings;
  /** The stream publisher (256 MB, 60 s). */
  readonly publisher?: FunctionSettings;
}

/** Properties of {@link EventSourcedService}. */
export interface EventSourcedServiceProps {
  /**
   * Where each function's code comes from: `serviceFromZip(zip)` for a service's one binary
   * (`strata_lambda::runtime::serve`), or code per role.
   */
  readonly code: FunctionCode;
  /**
   * The categories of the service's aggregates (`Aggregate::CATEGORY`), each routed to the command
   * and query functions: `POST /{category}/{id}/commands/{name}`, `GET /{category}/{id}` and
   * `GET /{category}/{id}/events`. Requests for any other path never reach a function.
   */
  readonly aggregates: readonly string[];
  /**
   * The names of its read models (`Projection::NAME`), served at `GET /views/{name}` and
   * `GET /views/{name}/{id}`. `[]`: the service has none, and no projector nor projector queue is
   * deployed (required, so that leaving it out never removes a projector that was deployed).
   */
  readonly projections: readonly string[];
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
  /**
   * Days a point-in-time restore of the table reaches back (1 to 35; default 35): a forgotten
   * subject's wrapped data key remains in the table's recovery window this long (README, "Erasure
   * timeline"). Only the service's roles may unwrap it, so a restored copy reveals nothing to whoever
   * restores it.
   */
  readonly recoveryPeriodDays?: number;
  /** Publisher event source mapping. */
  readonly publisher?: PublisherSettings;
  /** Projector queue. */
  readonly projector?: ProjectorSettings;
  /** Memory, timeout and reserved concurrency of each function. */
  readonly functionSettings?: ServiceFunctionSettings;
  /** @deprecated use `throttles.default`. */
  readonly throttle?: ApiThrottle;
  /**
   * Throttles of the routes: every route of the main API (default 100 per second, bursts of 200),
   * command and query routes each (default: the main API's), admin routes (default 1 per second,
   * bursts of 2).
   */
  readonly throttles?: ApiThrottles;
  /**
   * The service's event contracts (`Service::event_document`, e.g. `loadEventDocument('events.schema.json')`):
   * registered in an EventBridge schema registry of the service, one schema per detail-type, for
   * consumers in other teams to find and generate code from. Default: no registry.
   */
  readonly eventContracts?: EventDocument;
  /** How long the bus archive keeps events for replay (default 365 days). */
  readonly archiveRetention?: Duration;
  /** Log retention of every function and of the API access log (default one month). */
  readonly logRetention?: logs.RetentionDays;
  /** Table, keys and log groups on stack deletion (default RETAIN; DESTROY for throwaway stacks). */
  readonly removalPolicy?: RemovalPolicy;
  /** Where alarms notify (an SNS topic action, say). Default: alarms without actions. */
  readonly alarmAction?: cloudwatch.IAlarmAction;
  /**
   * Operators, key administrators, the break-glass role and the deployment role (see
   * infra/README.md, "Threat model"). Default: no operators nor key administrators, a break-glass
   * role of the stack (MFA to assume), the CDK bootstrap's deployment role.
   */
  readonly security?: ServiceSecurityProps;
}

/** The event store table, keys, bus, queues, functions, HTTP API and alarms of one Strata service. */
export class EventSourcedService extends Construct {
  /** The event store table. */
  readonly table: dynamodb.Table;
  /** Encrypts the table, its indexes and its stream at rest. */
  readonly tableKey: kms.Key;
  /** Wraps the per-subject data keys that seal personal fields (`STRATA_KMS_KEY_ID`). */
  readonly fieldKey: kms.Key;
  /** The only role that may disable the field key, schedule its deletion or change its policy. */
  readonly breakGlass: iam.IRole;
  /** The bus events are published to. */
  readonly bus: events.EventBus;
  /** The projector's queue (fed by a rule on the bus), when the service has read models. */
  readonly projectorQueue?: sqs.Queue;
  /** Messages the projector failed `maxReceiveCount` times, when the service has read models. */
  readonly projectorDeadLetters?: sqs.Queue;
  /** Events the rules could not deliver to the projector's or a consumer's queue. */
  readonly deliveryDeadLetters: sqs.Queue;
  /** Stream batches the publisher gave up on (metadata to replay them from the table). */
  readonly publisherFailures: sqs.Queue;
  /** The functions, by name. */
  readonly functions: {
    readonly commandApi: StrataFunction;
    readonly queryApi: StrataFunction;
    readonly queryAdmin?: StrataFunction;
    readonly streamPublisher: StrataFunction;
    readonly projector?: StrataFunction;
  };
  /** The consumers added with {@link EventSourcedService.addConsumer}, by name. */
  readonly consumers: Record<string, ServiceConsumer> = {};
  /** The HTTP API: commands, state, events, views. */
  readonly api: apigw.HttpApi;
  /** The admin HTTP API (subject export and forget), with the admin function. */
  readonly adminApi?: apigw.HttpApi;
  /** Both APIs, their routes and the grants on them. */
  readonly apis: ServiceApis;
  /** The schema registry of the service's events, with `eventContracts`. */
  readonly contracts?: EventContracts;
  /** Every alarm of the service. */
  readonly alarms: cloudwatch.Alarm[] = [];
  /** The rules that feed the projector's and consumers' queues (the delivery dead-letter queue's senders). */
  private readonly feedRules: events.Rule[] = [];

  /** Everything {@link EventSourcedService.addConsumer} wires a consumer to. */
  private readonly wiring: {
    readonly props: EventSourcedServiceProps;
    readonly access: TableAccess;
    readonly isolatedTenant: string | undefined;
    readonly logRetention: logs.RetentionDays;
    readonly removalPolicy: RemovalPolicy;
    readonly storeEnv: Record<string, string>;
  };

  constructor(scope: Construct, id: string, props: EventSourcedServiceProps) {
    super(scope, id);
    const spec = props.tableSpec ?? loadTableSpec();
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const fixedTenant = 'fixed' in props.tenancy ? props.tenancy.fixed : undefined;
    checkProps(props, fixedTenant);
    const settings = props.functionSettings ?? {};
    for (const [role, given] of Object.entries(settings)) checkSettings(role, given ?? {});
    const projections = props.projections;
    const isolatedTenant = props.tenantIsolation ? fixedTenant : undefined;

    // Keys: the table key is usable only through DynamoDB; the field key unwraps personal data and is
    // granted to the functions that open it, never to the publisher.
    this.tableKey = new kms.Key(this, 'TableKey', {
      description: 'Encrypts the Strata event store table, its indexes and stream at rest',
      enableKeyRotation: true,
      removalPolicy,
    });
    const security = props.security ?? {};
    const field = fieldKey(this, 'FieldKey', {
      ...security,
      removalPolicy,
      destroyable: removalPolicy === RemovalPolicy.DESTROY,
    });
    this.fieldKey = field.key;
    this.breakGlass = field.breakGlass;
    this.table = new EventStoreTable(this, 'EventStore', {
      spec,
      encryptionKey: this.tableKey,
      removalPolicy,
      recoveryPeriodDays: props.recoveryPeriodDays,
    }).table;
    const access = new TableAccess(this.table, spec, isolatedTenant);

    // Publishing: bus with an archive for replay; rules to the projector's and consumers' queues, each
    // rule with the delivery dead-letter queue.
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
    this.publisherFailures = serviceQueue(this, 'PublisherFailures');
    this.deliveryDeadLetters = serviceQueue(this, 'DeliveryDeadLetters');
    Validations.of(this.publisherFailures).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: "The stream event source mapping's on-failure destination: a dead-letter queue itself (alarmed).",
    });
    Validations.of(this.deliveryDeadLetters).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: "The EventBridge rules' dead-letter queue: a dead-letter queue itself (alarmed).",
    });

    // Functions.
    const code = (role: FunctionRole) => props.code(role);
    const common = { logRetention, removalPolicy, alarmAction: props.alarmAction };
    const scopes = apiScopes(props.auth);
    const tenancyEnv: Record<string, string> = {
      ...('fixed' in props.tenancy
        ? { STRATA_TENANT: props.tenancy.fixed }
        : {
            STRATA_TENANT_CLAIM: props.tenancy.claim,
            ...(props.tenancy.allowed ? { STRATA_TENANT_ALLOWED: props.tenancy.allowed.join(',') } : {}),
          }),
      // Under JWT the functions check each route's scope again (a route added by hand without one).
      ...(scopes && scopes.read ? { STRATA_SCOPE_READ: scopes.read } : {}),
      ...(scopes && scopes.write ? { STRATA_SCOPE_WRITE: scopes.write } : {}),
      ...(scopes ? { STRATA_SCOPE_ADMIN: scopes.admin } : {}),
    };
    // Every function that commits (the command function, a consumer that issues commands) writes the
    // same item format.
    const storeEnv: Record<string, string> = {
      STRATA_TABLE: this.table.tableName,
      STRATA_KMS_KEY_ID: this.fieldKey.keyArn,
      ...(props.commitFormat ? { STRATA_COMMIT_FORMAT: props.commitFormat } : {}),
    };
    this.wiring = { props, access, isolatedTenant, logRetention, removalPolicy, storeEnv };
    const fn = (
      fnId: string,
      role: Exclude<FunctionRole, 'consumer'>,
      description: string,
      environment: Record<string, string>,
      defaults: { timeout: Duration; memorySize: number },
      extraWildcardReason?: string,
    ) => {
      const given = settings[role] ?? {};
      return new StrataFunction(this, fnId, {
        ...common,
        role,
        code: code(role),
        description,
        environment: { STRATA_ROLE: role, ...storeEnv, ...environment },
        timeout: given.timeout ?? defaults.timeout,
        memorySize: given.memorySize ?? defaults.memorySize,
        reservedConcurrency: given.reservedConcurrency,
        extraWildcardReason,
      });
    };
    const snapshotEvery = String(props.snapshotEvery ?? 100);

    // 20 s: the repository's default RetryPolicy retries conflicts for up to 16 s (API Gateway's
    // integration timeout is 30 s).
    const commandApi = fn(
      'CommandApi',
      'command',
      'Strata commands: POST /{category}/{id}/commands/{name}',
      {
        ...tenancyEnv,
        STRATA_SNAPSHOT_EVERY: snapshotEvery,
        STRATA_STREAM_CACHE_ENTRIES: String(props.streamCacheEntries ?? 1000),
        // The stream publisher prunes old snapshots (below): off the command path.
        STRATA_SNAPSHOT_PRUNING: 'publisher',
      },
      { timeout: Duration.seconds(20), memorySize: 256 },
    );
    access.read(commandApi.function, []);
    access.put(commandApi.function, ['stream', 'data_key', 'idempotency']);
    grantTableKey(this.tableKey, commandApi.function, true);
    grantFieldKey(this.fieldKey, commandApi.function, true, isolatedTenant);

    const apiDefaults = { timeout: Duration.seconds(10), memorySize: 256 };
    const queryApi = fn(
      'QueryApi',
      'query',
      'Strata queries: state, events, views',
      // The command side's interval: above 0, loads start from its snapshots.
      { ...tenancyEnv, STRATA_ADMIN: 'false', STRATA_SNAPSHOT_EVERY: snapshotEvery },
      apiDefaults,
    );
    access.read(queryApi.function, ['lookup', 'snapshots']); // view listings; ?at= from a snapshot
    grantTableKey(this.tableKey, queryApi.function, false);
    grantFieldKey(this.fieldKey, queryApi.function, false, isolatedTenant);

    let queryAdmin: StrataFunction | undefined;
    if (props.admin ?? true) {
      queryAdmin = fn(
        'QueryAdmin',
        'admin',
        'Strata admin: subject export and forget',
        { ...tenancyEnv, STRATA_ADMIN: 'true' },
        apiDefaults,
      );
      access.read(queryAdmin.function, []);
      access.delete(queryAdmin.function, ['data_key']); // forget = delete the subject's data key
      // The audit records of each export and forget, in the subjects' audit partitions: a class no
      // other role writes and no role deletes (a new item each, conditionally).
      access.put(queryAdmin.function, ['audit']);
      grantTableKey(this.tableKey, queryAdmin.function, true);
      grantFieldKey(this.fieldKey, queryAdmin.function, false, isolatedTenant);
    }

    const streamPublisher = fn(
      'StreamPublisher',
      'publisher',
      'Relays committed events from the table stream to EventBridge',
      {
        STRATA_EVENT_BUS: this.bus.eventBusName,
        STRATA_EVENT_SOURCE: props.eventSource,
        // Pruning each stream's snapshots when one is written, off the command path.
        STRATA_SNAPSHOT_KEEP: String(props.snapshotKeep ?? 2),
      },
      { timeout: Duration.seconds(60), memorySize: 256 },
      'dynamodb:ListStreams (added by the event source mapping) has no resource-level permissions.',
    );
    this.bus.grantPutEventsTo(streamPublisher.function);
    // Forged events: no other principal of the account puts events on the bus, whatever its identity
    // policy (operators may, for `strata replay`).
    const operators = [...(security.operators ?? [])];
    onlyPutters(this.bus, () => [streamPublisher.role.roleArn, ...operators]);
    onlySenders(this.publisherFailures, { principals: () => [streamPublisher.role.roleArn, ...operators] });
    onlySenders(this.deliveryDeadLetters, { rules: () => this.feedRules.map((r) => r.ruleArn), principals: () => operators });
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
        filters: [
          ...[spec.published_kind, spec.snapshot_kind].map((kind) =>
            lambda.FilterCriteria.filter({
              eventName: lambda.FilterRule.isEqual('INSERT'),
              dynamodb: { NewImage: { [spec.kind_attribute]: { S: lambda.FilterRule.isEqual(kind) } } },
            }),
          ),
          // Any change to an item never changed once written, by its keys (the TableSpec's
          // `immutable_sort_key_prefixes`: zero-padded versions of commits and snapshots, audit
          // records). The publisher reports a commit's or an audit record's as tampering (its log's
          // `alert` field, alarmed below) and ignores a snapshot's (pruning).
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.or('MODIFY', 'REMOVE'),
            dynamodb: {
              Keys: { [spec.sort_key.name]: { S: spec.immutable_sort_key_prefixes.flatMap((p) => lambda.FilterRule.beginsWith(p)) } },
            },
          }),
        ],
      }),
    );

    let projector: StrataFunction | undefined;
    if (projections.length > 0) {
      projector = fn('Projector', 'projector', 'Applies published events to read-model views', {}, {
        timeout: Duration.seconds(60),
        memorySize: 256,
      });
      access.read(projector.function, []);
      access.put(projector.function, ['view']);
      grantTableKey(this.tableKey, projector.function, true);
      grantFieldKey(this.fieldKey, projector.function, false, isolatedTenant);
      const fed = feedFromBus(this, 'Projector', {
        bus: this.bus,
        pattern: { source: [props.eventSource] },
        description: 'Every event of the service to the projector',
        fn: projector.function,
        settings: props.projector ?? {},
        visibility: Duration.seconds(projector.function.timeout!.toSeconds() * 6),
        deliveryDeadLetters: this.deliveryDeadLetters,
      });
      this.projectorQueue = fed.queue;
      this.projectorDeadLetters = fed.deadLetters;
      onlySenders(fed.queue, { rules: () => [fed.rule.ruleArn], principals: () => operators });
      // SQS moves a message to its dead-letter queue without a SendMessage call: only a redrive
      // sends to it, and a message planted there would reach the projector by the next redrive.
      onlySenders(fed.deadLetters, { principals: () => operators });
      this.feedRules.push(fed.rule);
    }
    this.functions = { commandApi, queryApi, queryAdmin, streamPublisher, projector };

    // HTTP APIs: each aggregate's and read model's routes to their functions, admin routes on an API
    // of their own; any other path is answered by API Gateway, never a function.
    this.apis = new ServiceApis(this, 'Apis', {
      eventSource: props.eventSource,
      auth: props.auth,
      throttles: { ...(props.throttle ? { default: props.throttle } : {}), ...props.throttles },
      logRetention,
      removalPolicy,
      admin: queryAdmin !== undefined,
    });
    this.api = this.apis.api;
    this.adminApi = this.apis.adminApi;
    const route = (path: string, method: apigw.HttpMethod, kind: RouteKind, target: StrataFunction) =>
      this.apis.route(path, method, kind, target.function, target.node.id);
    for (const category of props.aggregates) {
      route(`/${category}/{id}/commands/{name}`, apigw.HttpMethod.POST, 'write', commandApi);
      route(`/${category}/{id}`, apigw.HttpMethod.GET, 'read', queryApi);
      route(`/${category}/{id}/events`, apigw.HttpMethod.GET, 'read', queryApi);
    }
    for (const view of projections) {
      route(`/views/${view}`, apigw.HttpMethod.GET, 'read', queryApi);
      route(`/views/${view}/{id}`, apigw.HttpMethod.GET, 'read', queryApi);
    }
    if (queryAdmin) {
      route('/admin/subjects/{subject}/export', apigw.HttpMethod.GET, 'admin', queryAdmin);
      route('/admin/subjects/{subject}', apigw.HttpMethod.DELETE, 'admin', queryAdmin);
    }

    if (props.eventContracts) {
      this.contracts = new EventContracts(this, 'EventContracts', {
        eventSource: props.eventSource,
        document: props.eventContracts,
        description: `Events of ${props.eventSource}`,
      });
    }

    // Alarms: anything in a dead-letter queue, any function error, a publisher falling behind.
    this.alarm(keyChangeAlarm(this, 'FieldKeyChanged', this.fieldKey));
    // Commits and audit records are immutable: the publisher logs every change to one it sees.
    const commitChanged = new logs.MetricFilter(this, 'CommitChangedFilter', {
      logGroup: streamPublisher.logGroup,
      filterPattern: logs.FilterPattern.stringValue('$.fields.alert', '=', COMMIT_CHANGED_ALERT),
      metricNamespace: 'Strata',
      metricName: Fn.join('-', ['CommitChanged', Aws.STACK_NAME, Names.uniqueId(this)]),
      metricValue: '1',
    });
    this.alarm(
      commitChanged.metric({ period: Duration.minutes(5), statistic: 'Sum' }).createAlarm(this, 'CommitChangedAlarm', {
        alarmDescription:
          "A commit item or an audit record was modified or removed (both are immutable): tampering, or a restore written over the table. The publisher's log names the item; CloudTrail's DynamoDB data events name the caller",
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    this.depthAlarm('PublisherFailuresAlarm', this.publisherFailures, 'Stream batches the publisher gave up on: replay them from the table');
    this.depthAlarm('DeliveryDeadLettersAlarm', this.deliveryDeadLetters, "Events EventBridge could not deliver to the projector's or a consumer's queue");
    if (this.projectorDeadLetters) {
      this.depthAlarm('ProjectorDeadLettersAlarm', this.projectorDeadLetters, 'Messages the projector failed repeatedly (poison events)');
    }
    for (const f of [commandApi, queryApi, queryAdmin, streamPublisher, projector]) {
      if (f) this.alarms.push(f.errorsAlarm);
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
    );
    for (const [api, alarmId, name] of [
      [this.api, 'ApiServerErrorsAlarm', 'HTTP API'],
      [this.adminApi, 'AdminApiServerErrorsAlarm', 'admin API'],
    ] as const) {
      if (!api) continue;
      this.alarm(
        api.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' }).createAlarm(this, alarmId, {
          alarmDescription: `The ${name} answered 5xx`,
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
  }

  /**
   * Lets `grantee` unwrap subjects' data keys with the field key (`kms:Decrypt` with the `tenant` and
   * `subject` encryption context; `generate` also creates them), in the key's own policy and the
   * grantee's. Use this, not `fieldKey.grantDecrypt`: the key's policy trusts no IAM policy, so
   * CDK's grants (identity policies only) would deploy and then be denied.
   */
  grantFieldKey(grantee: iam.IGrantable, generate = false): void {
    grantFieldKey(this.fieldKey, grantee, generate, this.wiring.isolatedTenant);
  }

  /**
   * A consumer of the service's events (a `strata_eventbridge::Consumer` of the team's code, run by
   * `Effects`): a rule on the bus (every event of the service, or `eventPattern`), its queue with a
   * dead-letter queue, its function (`STRATA_ROLE=consumer`, `STRATA_CONSUMER={name}`) with a role
   * that may read the table and write the consumer's effect records (and, with `issuesCommands`,
   * commit to streams), and alarms on its dead letters and errors.
   */
  addConsumer(name: string, props: ConsumerProps = {}): ServiceConsumer {
    const w = this.wiring;
    if (name in this.consumers) throw new Error(`consumer '${name}' is added twice`);
    const twin = Object.keys(this.consumers).find((other) => pascal(other) === pascal(name));
    if (twin) throw new Error(`consumer '${name}' and '${twin}' would share construct ids: rename one`);
    checkConsumer(name, props, w.props.eventSource);
    const consumer = new ServiceConsumer(this, `Consumer${pascal(name)}`, {
      ...props,
      name,
      code: props.code ?? w.props.code('consumer', name),
      bus: this.bus,
      eventSource: w.props.eventSource,
      access: w.access,
      tableKey: this.tableKey,
      fieldKey: this.fieldKey,
      isolatedTenant: w.isolatedTenant,
      serviceEnvironment: w.storeEnv,
      logRetention: w.logRetention,
      removalPolicy: w.removalPolicy,
      alarmAction: w.props.alarmAction,
      deliveryDeadLetters: this.deliveryDeadLetters,
      operators: w.props.security?.operators ?? [],
    });
    this.consumers[name] = consumer;
    this.feedRules.push(consumer.rule);
    this.alarms.push(consumer.function.errorsAlarm);
    this.depthAlarm(`Consumer${pascal(name)}DeadLettersAlarm`, consumer.deadLetters, `Messages the consumer ${name} failed repeatedly`);
    return consumer;
  }

  /**
   * Stack outputs of what callers, operators and tests need (names in {@link SERVICE_OUTPUTS}, each
   * consumer's as `Consumer{Name}QueueUrl`, `...QueueArn` and `...DeadLetterQueueUrl`): call it after
   * the last `addConsumer`. The emulator's stack has the same outputs (see `emulatorTemplate`).
   */
  addOutputs(prefix = ''): Record<string, string> {
    const values: Record<string, string | undefined> = {
      TableName: this.table.tableName,
      FieldKeyArn: this.fieldKey.keyArn,
      EventBusName: this.bus.eventBusName,
      EventSource: this.wiring.props.eventSource,
      ProjectorQueueUrl: this.projectorQueue?.queueUrl,
      ProjectorQueueArn: this.projectorQueue?.queueArn,
      ProjectorDeadLetterQueueUrl: this.projectorDeadLetters?.queueUrl,
      DeliveryDeadLetterQueueUrl: this.deliveryDeadLetters.queueUrl,
      PublisherFailureQueueUrl: this.publisherFailures.queueUrl,
      ApiUrl: this.api.apiEndpoint,
      AdminApiUrl: this.adminApi?.apiEndpoint,
    };
    for (const consumer of Object.values(this.consumers)) {
      const id = `Consumer${pascal(consumer.name)}`;
      values[`${id}QueueUrl`] = consumer.queue.queueUrl;
      values[`${id}QueueArn`] = consumer.queue.queueArn;
      values[`${id}DeadLetterQueueUrl`] = consumer.deadLetters.queueUrl;
    }
    const made: Record<string, string> = {};
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) continue;
      new CfnOutput(Stack.of(this), `${prefix}${name}`, { value });
      made[`${prefix}${name}`] = value;
    }
    return made;
  }

  private depthAlarm(alarmId: string, q: sqs.Queue, what: string): void {
    this.alarm(
      q.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }).createAlarm(this, alarmId, {
        alarmDescription: what,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
  }

  private alarm(alarm: cloudwatch.Alarm): void {
    const action = this.wiring.props.alarmAction;
    if (action) alarm.addAlarmAction(action);
    this.alarms.push(alarm);
  }
}

/** The `alert` of the publisher's log line for a changed commit (`strata_eventbridge::COMMIT_CHANGED_ALERT`). */
export const COMMIT_CHANGED_ALERT = 'commit_changed';

/** The outputs every service's stack has ({@link EventSourcedService.addOutputs}; the projector's only with read models, the admin API's only with `admin`). */
export const SERVICE_OUTPUTS = [
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
  'AdminApiUrl',
] as const;

function checkProps(props: EventSourcedServiceProps, fixedTenant: string | undefined): void {
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
  if (!('fixed' in props.tenancy)) {
    const { claim, allowed, claimSetBy } = props.tenancy;
    const writable = claim.startsWith('custom:') || USER_WRITABLE_CLAIMS.includes(claim);
    if (writable && claimSetBy !== 'issuer') {
      throw new Error(
        `tenancy.claim '${claim}': users can usually write this claim themselves and so pick their tenant; put the tenant in a claim a pre-token-generation trigger sets (infra/README.md), or say claimSetBy: 'issuer' if yours overrides it in every token`,
      );
    }
    if (allowed !== undefined) {
      if (allowed.length === 0) throw new Error('tenancy.allowed is empty: no tenant could call (omit it to allow any)');
      for (const tenant of allowed) {
        if (!/^[A-Za-z0-9._-]{1,64}$/.test(tenant)) throw new Error(`tenancy.allowed '${tenant}': use 1 to 64 of A-Z a-z 0-9 . _ -`);
      }
    }
  }
  if (fixedTenant !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(fixedTenant)) {
    // The tenant goes into IAM StringLike patterns (where * and ? are wildcards) and into keys.
    throw new Error(`tenant '${fixedTenant}': use 1 to 64 of A-Z a-z 0-9 . _ -`);
  }
  if (props.aggregates.length === 0) throw new Error('aggregates: name at least one category (Aggregate::CATEGORY)');
  checkNames('aggregate category', props.aggregates, CATEGORY_PATTERN);
  for (const category of props.aggregates) {
    if (RESERVED_CATEGORIES.includes(category)) {
      throw new Error(`aggregate category '${category}' is reserved (${RESERVED_CATEGORIES.join(', ')} are routes of their own)`);
    }
  }
  checkNames('projection', props.projections);
  checkQueueConcurrency('projector', props.functionSettings?.projector?.reservedConcurrency, props.projector ?? {});
  checkQueue('projector', props.projector ?? {});
}


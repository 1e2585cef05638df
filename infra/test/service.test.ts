// EventSourcedService as deployed: least privilege per function, the event source mappings, queues,
// bus, alarms, logs and the HTTP API's routes and authorizers.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { App } from 'aws-cdk-lib';
import { placeholderCode } from '../lib/function-code';
import { cdkContext, EXAMPLE_EVENT_SOURCE, StrataStack } from '../lib/strata-stack';
import { actionsOf, example, logicalId, statementsOf } from './helpers';

const WRITES = /^(dynamodb:(Put|Update|Delete|BatchWrite)|kms:(Encrypt|GenerateDataKey|ReEncrypt)|events:Put|sqs:Send)/;

describe('least privilege', () => {
  let template: Template;
  before(() => {
    template = example().template;
  });

  test('the query function reads and never writes', () => {
    const statements = statementsOf(template, 'QueryApi');
    const writes = actionsOf(statements).filter((a) => WRITES.test(a));
    assert.deepEqual(writes, []);
    assert.deepEqual(
      actionsOf(statements).filter((a) => a.startsWith('dynamodb:')),
      ['dynamodb:GetItem', 'dynamodb:Query'],
    );
  });

  test('the command function writes streams, data keys and idempotency records, and deletes nothing', () => {
    const statements = statementsOf(template, 'CommandApi');
    const put = statements.find((s) => s.Action === 'dynamodb:PutItem');
    assert.deepEqual(put?.Condition, {
      'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['*#S#*', '*#K#*', '*#I#*'] },
    });
    // Snapshots are pruned by the stream publisher, off the command path.
    assert.deepEqual(
      actionsOf(statements).filter((a) => a.startsWith('dynamodb:')),
      ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
    );
    const read = statements.find((s) => s.Sid === 'ReadEventStore');
    assert.equal(JSON.stringify(read?.Resource).includes('/index/'), false, 'no index: it lists no snapshots');
    const field = statements.find((s) => s.Sid === 'WrapAndUnwrapDataKeys');
    assert.deepEqual([].concat(field?.Action as never), ['kms:Decrypt', 'kms:GenerateDataKey']);
    assert.deepEqual(field?.Condition, {
      StringLike: { 'kms:EncryptionContext:tenant': '?*', 'kms:EncryptionContext:subject': '?*' },
    });
  });

  test('the projector writes only views and cannot create data keys', () => {
    const statements = statementsOf(template, 'Projector');
    const writes = statements.filter((s) => actionsOf([s]).some((a) => a.startsWith('dynamodb:') && WRITES.test(a)));
    assert.deepEqual(
      writes.map((s) => [s.Action, s.Condition]),
      [['dynamodb:PutItem', { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['*#P#*'] } }]],
    );
    const fieldKey = logicalId(template, 'AWS::KMS::Key', 'OrdersFieldKey');
    const onFieldKey = statements.filter((s) => JSON.stringify(s.Resource).includes(fieldKey));
    assert.deepEqual(onFieldKey.map((s) => s.Action), ['kms:Decrypt']);
    assert.ok(actionsOf(statements).includes('sqs:DeleteMessage'));
  });

  test('the publisher reads the stream, puts events on its bus and prunes snapshots, and never writes items or touches personal data', () => {
    const statements = statementsOf(template, 'StreamPublisher');
    const actions = actionsOf(statements);
    for (const a of ['dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'dynamodb:DescribeStream', 'events:PutEvents']) {
      assert.ok(actions.includes(a), a);
    }
    for (const a of ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']) {
      assert.ok(!actions.includes(a), a);
    }
    // Pruning: a Query of the snapshots index only (never the table's items), and deletes confined
    // to stream partitions.
    const queries = statements.filter((s) => actionsOf([s]).includes('dynamodb:Query'));
    assert.equal(queries.length, 1);
    assert.match(JSON.stringify(queries[0].Resource), /\/index\/snapshots"\]\]\}$/);
    const del = statements.filter((s) => actionsOf([s]).includes('dynamodb:DeleteItem'));
    assert.deepEqual(
      del.map((s) => [s.Action, s.Condition]),
      [['dynamodb:DeleteItem', { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['*#S#*'] } }]],
    );
    const fieldKey = logicalId(template, 'AWS::KMS::Key', 'OrdersFieldKey');
    assert.ok(!JSON.stringify(statements).includes(fieldKey), 'the publisher may not use the field key');
    const put = statements.find((s) => s.Action === 'events:PutEvents');
    assert.deepEqual(put?.Resource, { 'Fn::GetAtt': [logicalId(template, 'AWS::Events::EventBus', 'OrdersBus'), 'Arn'] });
  });

  test('only the admin function deletes data keys (forget), and it puts only audit records', () => {
    const statements = statementsOf(template, 'QueryAdmin');
    const del = statements.find((s) => s.Action === 'dynamodb:DeleteItem');
    assert.deepEqual(del?.Condition, { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['*#K#*'] } });
    // It puts only audit records, in the subjects' audit partitions (a class nobody deletes in).
    const put = statements.filter((s) => actionsOf([s]).includes('dynamodb:PutItem'));
    assert.deepEqual(
      put.map((s) => s.Condition),
      [{ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['*#A#*'] } }],
    );
    for (const fn of ['CommandApi', 'QueryApi', 'StreamPublisher', 'Projector']) {
      const deletes = statementsOf(template, fn).filter((s) => actionsOf([s]).includes('dynamodb:DeleteItem'));
      assert.ok(!JSON.stringify(deletes).includes('#K#'), `${fn} may not delete data keys`);
    }
  });

  test('the field key is used by the functions that open personal data only, always with the encryption context', () => {
    const fieldKey = logicalId(template, 'AWS::KMS::Key', 'OrdersFieldKey');
    const users = ['CommandApi', 'QueryApi', 'QueryAdmin', 'StreamPublisher', 'Projector'].filter((fn) =>
      statementsOf(template, fn).some((s) => JSON.stringify(s.Resource).includes(fieldKey)),
    );
    assert.deepEqual(users, ['CommandApi', 'QueryApi', 'QueryAdmin', 'Projector']);
    for (const fn of users) {
      for (const s of statementsOf(template, fn).filter((st) => JSON.stringify(st.Resource).includes(fieldKey))) {
        assert.deepEqual(Object.keys(s.Condition?.StringLike ?? {}).sort(), [
          'kms:EncryptionContext:subject',
          'kms:EncryptionContext:tenant',
        ]);
      }
    }
  });

  test('no function has a managed policy; each writes only its own log group', () => {
    for (const role of Object.values(template.findResources('AWS::IAM::Role'))) {
      assert.equal(role.Properties.ManagedPolicyArns, undefined);
    }
    for (const fn of ['CommandApi', 'QueryApi', 'QueryAdmin', 'StreamPublisher', 'Projector']) {
      const logs = statementsOf(template, fn).filter((s) => actionsOf([s]).some((a) => a.startsWith('logs:')));
      assert.equal(logs.length, 1, fn);
      assert.match(JSON.stringify(logs[0].Resource), new RegExp(`^\\[\\{"Fn::GetAtt":\\["Orders${fn}Logs`), fn);
    }
  });
});

describe('tenant isolation', () => {
  test('confines every table statement and the data keys to the fixed tenant', () => {
    const { template } = example({ tenancy: { fixed: 'acme' }, tenantIsolation: true });
    let contexts = 0;
    for (const fn of ['CommandApi', 'QueryApi', 'QueryAdmin', 'Projector']) {
      for (const s of statementsOf(template, fn)) {
        const actions = actionsOf([s]);
        if (actions.some((a) => /^dynamodb:(GetItem|Query|PutItem|DeleteItem)$/.test(a))) {
          const keys = s.Condition?.['ForAllValues:StringLike']?.['dynamodb:LeadingKeys'] as string[];
          assert.ok(keys?.length && keys.every((k) => k.startsWith('acme#')), `${fn}: ${JSON.stringify(s)}`);
        }
        if (actionsOf([s]).includes('kms:Decrypt') && s.Condition?.StringLike) {
          assert.equal(s.Condition.StringLike['kms:EncryptionContext:tenant'], 'acme');
          contexts += 1;
        }
      }
    }
    assert.equal(contexts, 4, 'each of the four functions has its field key statement confined');
  });

  test('a stream cache size that the function could not parse is refused; the commit format is passed on', () => {
    for (const entries of [-1, 1.5, Number.NaN]) {
      assert.throws(() => example({ streamCacheEntries: entries }), /streamCacheEntries .*: use a whole number/);
    }
    const zero = example({ streamCacheEntries: 0 }).template;
    const fns = zero.findResources('AWS::Lambda::Function');
    const command = Object.entries(fns).find(([id]) => id.startsWith('OrdersCommandApi'))?.[1];
    assert.equal(command?.Properties.Environment.Variables.STRATA_STREAM_CACHE_ENTRIES, '0');
    assert.equal(command?.Properties.Environment.Variables.STRATA_COMMIT_FORMAT, undefined, 'v3 by default');
    const legacy = example({ commitFormat: 'legacy' }).template.findResources('AWS::Lambda::Function');
    const legacyCommand = Object.entries(legacy).find(([id]) => id.startsWith('OrdersCommandApi'))?.[1];
    assert.equal(legacyCommand?.Properties.Environment.Variables.STRATA_COMMIT_FORMAT, 'legacy');
    // Plain JavaScript callers are not held to the type.
    assert.throws(() => example({ commitFormat: 'v9' as 'v3' }), /commitFormat "v9": use v3, v2 or legacy/);
    for (const keep of [0, 1.5, Number.NaN]) {
      assert.throws(() => example({ snapshotKeep: keep }), /snapshotKeep .*: keep at least 1/);
    }
  });

  test('a tenant that IAM patterns would read as a wildcard is refused', () => {
    assert.throws(() => example({ tenancy: { fixed: 'a*' } }), /tenant 'a\*': use 1 to 64 of/);
  });

  test('is refused with a tenant per request, and IAM auth is refused with claim tenancy', () => {
    assert.throws(
      () => example({ tenancy: { claim: 'tenant' }, auth: { jwt: { issuer: 'https://issuer', audience: ['a'] } }, tenantIsolation: true }),
      /tenantIsolation needs tenancy \{ fixed \}/,
    );
    assert.throws(() => example({ tenancy: { claim: 'tenant' } }), /needs JWT auth/);
  });
});

describe('pipeline', () => {
  let template: Template;
  before(() => {
    template = example().template;
  });

  test('the publisher reads new commits from the stream with bisect, bounded retries, an on-failure queue and partial batch responses', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^OrdersEventStoreTable'), 'StreamArn'] },
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 100,
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 1000,
      MaximumRecordAgeInSeconds: 86400,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      FilterCriteria: {
        Filters: [
          ...['commit', 'snapshot'].map((kind) => ({
            Pattern: JSON.stringify({ eventName: ['INSERT'], dynamodb: { NewImage: { kind: { S: [kind] } } } }),
          })),
          // Changes to commits are reported (see security.test.ts).
          {
            Pattern: JSON.stringify({
              eventName: ['MODIFY', 'REMOVE'],
              dynamodb: { Keys: { sk: { S: [{ prefix: '0' }, { prefix: 'AUDIT#' }] } } },
            }),
          },
        ],
      },
      DestinationConfig: {
        OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('^OrdersPublisherFailures'), 'Arn'] } },
      },
    });
  });

  test('the projector reads its queue with partial batch responses; the queue redrives to a DLQ after 5 receives', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^OrdersProjectorQueue'), 'Arn'] },
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 360,
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^OrdersProjectorDeadLetters'), 'Arn'] },
        maxReceiveCount: 5,
      },
    });
    for (const queue of Object.values(template.findResources('AWS::SQS::Queue'))) {
      assert.equal(queue.Properties.SqsManagedSseEnabled, true);
    }
    template.resourceCountIs('AWS::SQS::QueuePolicy', 4); // each enforces TLS (and lets the rule send)
  });

  test('the bus archives the service events and its rule delivers them to the projector queue, with a DLQ', () => {
    template.hasResourceProperties('AWS::Events::Archive', {
      EventPattern: { source: ['com.example.orders'] },
      RetentionDays: 365,
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['com.example.orders'] },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^OrdersProjectorQueue'), 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^OrdersDeliveryDeadLetters'), 'Arn'] } },
          RetryPolicy: { MaximumEventAgeInSeconds: 86400, MaximumRetryAttempts: 185 },
        }),
      ],
    });
  });

  test('both keys rotate', () => {
    const keys = Object.values(template.findResources('AWS::KMS::Key'));
    assert.equal(keys.length, 2);
    for (const key of keys) assert.equal(key.Properties.EnableKeyRotation, true);
  });

  test('functions: arm64, provided.al2023, JSON logs into their own log group with a retention, configured by env', () => {
    const functions = template.findResources('AWS::Lambda::Function');
    assert.equal(Object.keys(functions).length, 5);
    for (const fn of Object.values(functions)) {
      assert.deepEqual(fn.Properties.Architectures, ['arm64']);
      assert.equal(fn.Properties.Runtime, 'provided.al2023');
      assert.equal(fn.Properties.LoggingConfig.LogFormat, 'JSON');
      assert.ok(fn.Properties.LoggingConfig.LogGroup.Ref);
    }
    for (const group of Object.values(template.findResources('AWS::Logs::LogGroup'))) {
      assert.equal(group.Properties.RetentionInDays, 30);
    }
    const env = (prefix: string) =>
      Object.entries(functions).find(([id]) => id.startsWith(prefix))?.[1].Properties.Environment.Variables;
    assert.deepEqual(Object.keys(env('OrdersCommandApi')).sort(), [
      'RUST_LOG', 'STRATA_KMS_KEY_ID', 'STRATA_ROLE', 'STRATA_SNAPSHOT_EVERY', 'STRATA_SNAPSHOT_PRUNING',
      'STRATA_STREAM_CACHE_ENTRIES', 'STRATA_TABLE', 'STRATA_TENANT',
    ]);
    // Each function's part of the service, for a service's one binary (strata_lambda::runtime).
    const roles = Object.entries(functions).map(([id, f]) => [id.replace(/Function.*/, ''), f.Properties.Environment.Variables.STRATA_ROLE]);
    assert.deepEqual(roles.sort(), [
      ['OrdersCommandApi', 'command'],
      ['OrdersProjector', 'projector'],
      ['OrdersQueryAdmin', 'admin'],
      ['OrdersQueryApi', 'query'],
      ['OrdersStreamPublisher', 'publisher'],
    ]);
    assert.equal(env('OrdersCommandApi').STRATA_STREAM_CACHE_ENTRIES, '1000');
    assert.equal(env('OrdersCommandApi').STRATA_SNAPSHOT_PRUNING, 'publisher');
    const timeout = (prefix: string) =>
      Object.entries(functions).find(([id]) => id.startsWith(prefix))?.[1].Properties.Timeout;
    assert.equal(timeout('OrdersCommandApi'), 20, 'RetryPolicy::default retries for up to 16 s');
    assert.equal(timeout('OrdersQueryApi'), 10);
    assert.equal(env('OrdersStreamPublisher').STRATA_SNAPSHOT_KEEP, '2');
    assert.ok(env('OrdersStreamPublisher').STRATA_TABLE);
    assert.equal(env('OrdersQueryApi').STRATA_ADMIN, 'false');
    assert.equal(env('OrdersQueryAdmin').STRATA_ADMIN, 'true');
    assert.equal(env('OrdersStreamPublisher').STRATA_EVENT_SOURCE, 'com.example.orders');
    assert.deepEqual(Object.keys(env('OrdersProjector')).sort(), ['RUST_LOG', 'STRATA_KMS_KEY_ID', 'STRATA_ROLE', 'STRATA_TABLE']);
  });

  test('alarms: each DLQ, each function, the publisher lag, both APIs\' 5xx, changed commits and key changes', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    const metric = (name: string) => alarms.filter((a) => a.Properties.MetricName === name).length;
    assert.equal(metric('ApproximateNumberOfMessagesVisible'), 3);
    assert.equal(metric('Errors'), 5);
    assert.equal(metric('IteratorAge'), 1);
    assert.equal(metric('5xx'), 2);
    assert.equal(metric('MatchedEvents'), 1);
    assert.equal(alarms.filter((a) => a.Properties.Namespace === 'Strata').length, 1);
    assert.equal(alarms.length, 3 + 5 + 1 + 2 + 1 + 1);
  });
});

describe('HTTP API', () => {
  const routes = (template: Template) =>
    Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((r) => ({
      key: r.Properties.RouteKey as string,
      api: JSON.stringify(r.Properties.ApiId),
      auth: r.Properties.AuthorizationType as string,
      scopes: r.Properties.AuthorizationScopes as string[] | undefined,
      target: JSON.stringify(r.Properties.Target),
    }));
  const MAIN = [
    'GET /order/{id}',
    'GET /order/{id}/events',
    'GET /views/order-summary',
    'GET /views/order-summary/{id}',
    'POST /order/{id}/commands/{name}',
  ];
  const ADMIN = ['DELETE /admin/subjects/{subject}', 'GET /admin/subjects/{subject}/export'];

  test('IAM: commands and queries on the main API, admin routes on an API of their own, each to its function', () => {
    const { template } = example();
    const all = routes(template);
    const admin = logicalId(template, 'AWS::ApiGatewayV2::Api', 'OrdersApisAdmin');
    const main = Object.keys(template.findResources('AWS::ApiGatewayV2::Api')).filter((id) => id !== admin);
    assert.equal(main.length, 1);
    const apiId = (id: string) => JSON.stringify({ Ref: id });
    assert.deepEqual(all.filter((r) => r.api === apiId(main[0])).map((r) => r.key).sort(), MAIN);
    assert.deepEqual(all.filter((r) => r.api === apiId(admin)).map((r) => r.key).sort(), ADMIN);
    for (const r of all) assert.equal(r.auth, 'AWS_IAM', r.key);
    const integrations = template.findResources('AWS::ApiGatewayV2::Integration');
    const targetOf = (key: string) => {
      const route = all.find((r) => r.key === key);
      const id = Object.keys(integrations).find((i) => route?.target.includes(i));
      return JSON.stringify(integrations[id as string].Properties.IntegrationUri);
    };
    assert.match(targetOf('POST /order/{id}/commands/{name}'), /OrdersCommandApi/);
    for (const key of ['GET /order/{id}', 'GET /order/{id}/events', 'GET /views/order-summary', 'GET /views/order-summary/{id}']) {
      assert.match(targetOf(key), /OrdersQueryApiFunction/, key);
    }
    assert.match(targetOf('DELETE /admin/subjects/{subject}'), /OrdersQueryAdmin/);
    // Throttles: the main API's default, admin's low one; JSON access logs with caller and status.
    const stages = Object.values(template.findResources('AWS::ApiGatewayV2::Stage')).map((st) => st.Properties);
    assert.deepEqual(
      stages.map((st) => st.DefaultRouteSettings).sort((x, y) => x.ThrottlingRateLimit - y.ThrottlingRateLimit),
      [
        { ThrottlingBurstLimit: 2, ThrottlingRateLimit: 1 },
        { ThrottlingBurstLimit: 200, ThrottlingRateLimit: 100 },
      ],
    );
    for (const st of stages) {
      const format = JSON.parse(st.AccessLogSettings.Format);
      assert.equal(format.caller, '$context.identity.userArn');
      assert.equal(format.route, '$context.routeKey');
      assert.equal(format.status, '$context.status');
      assert.equal(format.latencyMs, '$context.responseLatency');
    }
  });

  test('IAM: grantRead, grantWrite and grantAdmin name exactly their routes, admin ones on the admin API', () => {
    const stack = new StrataStack(new App({ context: cdkContext() }), 'Strata', { code: placeholderCode(), eventSource: EXAMPLE_EVENT_SOURCE });
    const role = (name: string) => new iam.Role(stack, name, { assumedBy: new iam.AccountRootPrincipal() });
    stack.service.apis.grantRead(role('Reader'));
    stack.service.apis.grantWrite(role('Writer'));
    stack.service.apis.grantAdmin(role('Operator'));
    const template = Template.fromStack(stack);
    const grants = (name: string) => {
      const roleId = logicalId(template, 'AWS::IAM::Role', name);
      const policy = Object.values(template.findResources('AWS::IAM::Policy')).find((p) =>
        (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId),
      );
      const statements = policy?.Properties.PolicyDocument.Statement as { Action: string; Resource: unknown[] }[];
      assert.deepEqual(statements.map((st) => st.Action), ['execute-api:Invoke']);
      // Each ARN as `{api}/{stage}/{method}{path}`: the parts after the API's id.
      return ([] as unknown[]).concat(statements[0].Resource).map((arn) => {
        const parts = (arn as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
        const api = JSON.stringify(parts.find((p) => typeof p === 'object' && JSON.stringify(p).includes('Api')));
        return `${api.includes('Admin') ? 'admin' : 'main'}:${parts.filter((p) => typeof p === 'string').pop()}`;
      }).sort();
    };
    assert.deepEqual(grants('Reader'), [
      'main:/$default/GET/order/*',
      'main:/$default/GET/order/*/events',
      'main:/$default/GET/views/order-summary',
      'main:/$default/GET/views/order-summary/*',
    ]);
    assert.deepEqual(grants('Writer'), ['main:/$default/POST/order/*/commands/*']);
    assert.deepEqual(grants('Operator'), ['admin:/$default/DELETE/admin/subjects/*', 'admin:/$default/GET/admin/subjects/*/export']);
  });

  test('per-route throttles for commands and queries', () => {
    const { template } = example({ throttles: { command: { rateLimit: 20, burstLimit: 40 }, query: { rateLimit: 50, burstLimit: 80 } } });
    const main = Object.values(template.findResources('AWS::ApiGatewayV2::Stage')).find((st) => st.Properties.RouteSettings);
    // CloudFormation refuses route settings of a route not created yet: the stage waits for each.
    const routeIds = Object.keys(template.findResources('AWS::ApiGatewayV2::Route')).filter((id) => id.startsWith('OrdersApi') && !id.startsWith('OrdersApis'));
    assert.equal(routeIds.length, MAIN.length);
    for (const id of routeIds) assert.ok((main?.DependsOn as string[]).includes(id), id);
    assert.deepEqual(main?.Properties.RouteSettings, {
      'POST /order/{id}/commands/{name}': { ThrottlingBurstLimit: 40, ThrottlingRateLimit: 20 },
      ...Object.fromEntries(MAIN.filter((k) => k.startsWith('GET')).map((k) => [k, { ThrottlingBurstLimit: 80, ThrottlingRateLimit: 50 }])),
    });
  });

  test('JWT: tenant from a claim; every route needs its scope (read, write, admin); no IAM grants', () => {
    const { stack, template } = example({
      tenancy: { claim: 'tenant' },
      auth: { jwt: { issuer: 'https://issuer.example.com', audience: ['strata'] } },
    });
    for (const r of routes(template)) {
      assert.equal(r.auth, 'JWT', r.key);
      const scope = r.key.includes('/admin/') ? 'strata/admin' : r.key.startsWith('POST') ? 'strata/write' : 'strata/read';
      assert.deepEqual(r.scopes, [scope], r.key);
    }
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      JwtConfiguration: { Audience: ['strata'], Issuer: 'https://issuer.example.com' },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ STRATA_TENANT_CLAIM: 'tenant' }) },
    });
    assert.throws(() => stack.service.apis.grantRead(new iam.Role(stack, 'R', { assumedBy: new iam.AccountRootPrincipal() })), /JWT auth.*strata\/read/);
  });
});

describe('event contracts', () => {
  test("a schema registry with each published event's schema, named source@detail-type", () => {
    const { template } = example();
    template.resourceCountIs('AWS::EventSchemas::Registry', 1);
    const schemas = Object.values(template.findResources('AWS::EventSchemas::Schema'));
    assert.deepEqual(
      schemas.map((s) => s.Properties.SchemaName).sort(),
      ['ItemAdded', 'ItemRemoved', 'OrderCancelled', 'OrderPaid', 'OrderPlaced', 'OrderShipped'].map((t) => `com.example.orders@${t}`),
    );
    const placed = schemas.find((s) => s.Properties.SchemaName === 'com.example.orders@OrderPlaced');
    assert.equal(placed?.Properties.Type, 'JSONSchemaDraft4');
    const content = JSON.parse(placed?.Properties.Content);
    assert.deepEqual(content.properties['detail-type'], { enum: ['OrderPlaced'] });
    const detail = content.definitions.StrataDetail;
    assert.deepEqual(detail.properties.event_type, { enum: ['OrderPlaced'] });
    assert.equal(detail.properties.payload.properties.customer_email['x-strata-personal'], true, 'personal fields sealed');
  });
});

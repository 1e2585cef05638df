// The security boundaries of EventSourcedService (infra/README.md, "Threat model"), pinned: who may put
// events on the bus, send to each queue, use and manage the field key; the alarm on key changes; every
// `Resource: *` statement; concurrency caps; the recovery window.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { placeholderCode } from '../lib/function-code';
import { KEY_ADMIN_ACTIONS, KEY_GUARDED_ACTIONS } from '../lib/security';
import { cdkContext, EXAMPLE_EVENT_SOURCE, StrataStack, type StrataStackProps } from '../lib/strata-stack';
import { logicalId } from './helpers';

type Json = Record<string, unknown>;
type Statement = { Sid?: string; Effect: string; Action: string | string[]; Principal?: unknown; Resource: unknown; Condition?: Json };

/** The example with two consumers (one issuing commands), synthesized. */
function withConsumers(props: Partial<StrataStackProps> = {}): Template {
  const stack = new StrataStack(new App({ context: cdkContext() }), 'Strata', {
    code: placeholderCode(),
    eventSource: EXAMPLE_EVENT_SOURCE,
    ...props,
  });
  stack.service.addConsumer('mailer');
  stack.service.addConsumer('process', { issuesCommands: true, eventPattern: { detailType: ['OrderPlaced'] } });
  return Template.fromStack(stack);
}

const getAtt = (id: string, attribute = 'Arn') => ({ 'Fn::GetAtt': [id, attribute] });
const roleOf = (template: Template, prefix: string) => getAtt(logicalId(template, 'AWS::IAM::Role', prefix));
const OPERATOR = 'arn:aws:iam::123456789012:role/operator';

describe('forged events', () => {
  let template: Template;
  before(() => {
    template = withConsumers({ security: { operators: [OPERATOR] } });
  });

  test('only the publisher (and operators, for strata replay) may put events on the bus: everyone else is denied', () => {
    const policies = Object.values(template.findResources('AWS::Events::EventBusPolicy'));
    assert.equal(policies.length, 1);
    const statement = policies[0].Properties.Statement as Statement;
    assert.deepEqual(statement, {
      Sid: 'cdk-OnlyThePublisherPutsEvents',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 'events:PutEvents',
      Resource: getAtt(logicalId(template, 'AWS::Events::EventBus', 'OrdersBus')),
      Condition: { ArnNotEquals: { 'aws:PrincipalArn': [roleOf(template, 'OrdersStreamPublisherRole'), OPERATOR] } },
    });
  });

  const denyOf = (queuePrefix: string): Statement => {
    const queue = logicalId(template, 'AWS::SQS::Queue', queuePrefix);
    const policy = Object.values(template.findResources('AWS::SQS::QueuePolicy')).find((p) =>
      (p.Properties.Queues as { Ref: string }[]).some((q) => q.Ref === queue),
    );
    const statements = policy?.Properties.PolicyDocument.Statement as Statement[];
    const deny = statements.filter((s) => s.Sid === 'OnlyItsFeedSends');
    assert.equal(deny.length, 1, queuePrefix);
    assert.equal(deny[0].Effect, 'Deny');
    assert.deepEqual(deny[0].Principal, { AWS: '*' });
    assert.equal(deny[0].Action, 'sqs:SendMessage');
    // The rule's own allow (CDK's) names the rule as aws:SourceArn too.
    const allow = statements.filter((s) => s.Effect === 'Allow');
    for (const a of allow) assert.deepEqual(a.Principal, { Service: 'events.amazonaws.com' }, queuePrefix);
    return deny[0];
  };
  const rule = (prefix: string) => getAtt(logicalId(template, 'AWS::Events::Rule', prefix));

  test("each rule-fed queue takes messages only from its rule (aws:SourceArn) and operators (a redrive)", () => {
    for (const [queue, feed] of [
      ['OrdersProjectorQueue', 'OrdersToProjector'],
      ['OrdersConsumerMailerFeedQueue', 'OrdersConsumerMailerToFeed'],
      ['OrdersConsumerProcessFeedQueue', 'OrdersConsumerProcessToFeed'],
    ]) {
      assert.deepEqual(denyOf(queue).Condition, {
        ArnNotEquals: { 'aws:SourceArn': [rule(feed)], 'aws:PrincipalArn': [OPERATOR] },
      }, queue);
    }
  });

  test('the dead-letter queues SQS fills itself take messages only from operators (what a redrive would deliver)', () => {
    for (const queue of ['OrdersProjectorDeadLetters', 'OrdersConsumerMailerFeedDeadLetters', 'OrdersConsumerProcessFeedDeadLetters']) {
      const condition = denyOf(queue).Condition as { ArnNotEquals: Json };
      assert.deepEqual(condition.ArnNotEquals['aws:PrincipalArn'], [OPERATOR], queue);
      assert.match(JSON.stringify(condition.ArnNotEquals['aws:SourceArn']), /strata-no-such-sender/, queue);
    }
  });

  test("the rules' dead-letter queue takes messages only from every rule of the service; the publisher's from the publisher", () => {
    assert.deepEqual(denyOf('OrdersDeliveryDeadLetters').Condition, {
      ArnNotEquals: {
        'aws:SourceArn': [rule('OrdersToProjector'), rule('OrdersConsumerMailerToFeed'), rule('OrdersConsumerProcessToFeed')],
        'aws:PrincipalArn': [OPERATOR],
      },
    });
    const publisherFailures = denyOf('OrdersPublisherFailures').Condition as { ArnNotEquals: Json };
    assert.deepEqual(publisherFailures.ArnNotEquals['aws:PrincipalArn'], [roleOf(template, 'OrdersStreamPublisherRole'), OPERATOR]);
    // No rule sends there: the placeholder ARN matches no rule.
    assert.match(JSON.stringify(publisherFailures.ArnNotEquals['aws:SourceArn']), /strata-no-such-sender/);
  });
});

describe('history rewritten', () => {
  let template: Template;
  before(() => {
    template = withConsumers();
  });

  test("the publisher sees every change to a commit item or an audit record: new commits and snapshots, and any MODIFY or REMOVE with a version's or an audit record's sort key", () => {
    const mapping = Object.values(template.findResources('AWS::Lambda::EventSourceMapping')).find((m) => m.Properties.StartingPosition);
    const patterns = (mapping?.Properties.FilterCriteria.Filters as { Pattern: string }[]).map((f) => JSON.parse(f.Pattern));
    assert.deepEqual(patterns, [
      { eventName: ['INSERT'], dynamodb: { NewImage: { kind: { S: ['commit'] } } } },
      { eventName: ['INSERT'], dynamodb: { NewImage: { kind: { S: ['snapshot'] } } } },
      { eventName: ['MODIFY', 'REMOVE'], dynamodb: { Keys: { sk: { S: [{ prefix: '0' }, { prefix: 'AUDIT#' }] } } } },
    ]);
  });

  test("the publisher's alert line raises an alarm; the alert is the one the Rust publisher writes", () => {
    const filters = Object.values(template.findResources('AWS::Logs::MetricFilter'));
    assert.equal(filters.length, 1);
    assert.equal(filters[0].Properties.FilterPattern, '{ $.fields.alert = "commit_changed" }');
    assert.deepEqual(filters[0].Properties.LogGroupName, { Ref: logicalId(template, 'AWS::Logs::LogGroup', 'OrdersStreamPublisherLogs') });
    const metric = filters[0].Properties.MetricTransformations[0];
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: 'Strata', MetricName: metric.MetricName, Threshold: 1 });
    const rust = fs.readFileSync(path.join(__dirname, '..', '..', 'crates', 'eventbridge', 'src', 'records.rs'), 'utf8');
    assert.match(rust, /pub const COMMIT_CHANGED_ALERT: &str = "commit_changed";/);
  });

  test("each role's LeadingKeys are exactly the partition classes its Rust code writes (infra/role-writes.json), both by the TableSpec's tags", () => {
    const spec = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'table-spec.json'), 'utf8')) as {
      partition_classes: { name: string; tag: string }[];
    };
    const recorded = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'role-writes.json'), 'utf8')) as Record<string, Record<string, string[]>>;
    const roles: Record<string, string> = {
      command: 'OrdersCommandApi',
      query: 'OrdersQueryApi',
      admin: 'OrdersQueryAdmin',
      projector: 'OrdersProjector',
      publisher: 'OrdersStreamPublisher',
      'consumer-issuing-commands': 'OrdersConsumerProcess',
    };
    // Granted and never written in the recording, each for a reason the recording cannot show.
    const unexercised: Record<string, Record<string, string[]>> = {
      'consumer-issuing-commands': {
        'dynamodb:DeleteItem': ['idempotency'], // releasing the claim of an effect that failed
        'dynamodb:PutItem': ['data_key'], // a command of the process naming a subject new to the service
      },
    };
    const policies = Object.entries(template.findResources('AWS::IAM::Policy'));
    for (const [role, prefix] of Object.entries(roles)) {
      const granted: Record<string, Set<string>> = {};
      for (const [id, policy] of policies) {
        if (!id.startsWith(prefix)) continue;
        for (const st of policy.Properties.PolicyDocument.Statement as Statement[]) {
          const writes = ([] as string[]).concat(st.Action).filter((a) => /^dynamodb:(Put|Delete|Update|ConditionCheck)/.test(a));
          if (writes.length === 0) continue;
          const patterns = (st.Condition?.['ForAllValues:StringLike'] as Json)['dynamodb:LeadingKeys'] as string[];
          for (const action of writes) {
            for (const pattern of patterns) {
              const tag = pattern.split('#')[1];
              const cls = spec.partition_classes.find((c) => c.tag === tag);
              assert.ok(cls, `${role}: ${pattern} names no partition class`);
              (granted[action] ??= new Set()).add(cls.name);
            }
          }
        }
      }
      const expected: Record<string, Set<string>> = {};
      for (const source of [recorded[role] ?? {}, unexercised[role] ?? {}]) {
        for (const [action, classes] of Object.entries(source)) for (const c of classes) (expected[action] ??= new Set()).add(c);
      }
      const sorted = (m: Record<string, Set<string>>) => Object.fromEntries(Object.entries(m).sort().map(([a, c]) => [a, [...c].sort()]));
      assert.deepEqual(sorted(granted), sorted(expected), role);
    }
    assert.deepEqual(Object.keys(recorded).sort(), Object.keys(roles).sort(), 'every role recorded');
  });

  test('no function may update items; only the publisher (snapshots) and the admin function (data keys) and consumers (effect claims) delete', () => {
    const deletes: string[] = [];
    for (const [id, policy] of Object.entries(template.findResources('AWS::IAM::Policy'))) {
      for (const s of policy.Properties.PolicyDocument.Statement as Statement[]) {
        const acts = ([] as string[]).concat(s.Action);
        for (const a of acts.filter((x) => x.startsWith('dynamodb:'))) {
          assert.ok(!/\*|Update|BatchWrite|PartiQL|Restore|Import/.test(a), `${id}: ${a}`);
        }
        if (acts.includes('dynamodb:DeleteItem')) {
          const keys = (s.Condition?.['ForAllValues:StringLike'] as Json)['dynamodb:LeadingKeys'];
          deletes.push(`${id.replace(/(Function)?RoleDefaultPolicy[0-9A-F]{8}$/, '')}: ${JSON.stringify(keys)}`);
        }
      }
    }
    // Nobody deletes in audit partitions.
    assert.ok(!deletes.some((d) => d.includes('#A#')), deletes.join());
    assert.deepEqual(deletes.sort(), [
      'OrdersConsumerMailer: ["*#I#*"]',
      'OrdersConsumerProcess: ["*#I#*"]',
      'OrdersQueryAdmin: ["*#K#*"]',
      'OrdersStreamPublisher: ["*#S#*"]',
    ]);
  });
});

describe('the field key', () => {
  let template: Template;
  let statements: Statement[];
  before(() => {
    template = withConsumers({ security: { operators: [OPERATOR], keyAdmins: ['arn:aws:iam::123456789012:role/key-admin'] } });
    const key = template.findResources('AWS::KMS::Key')[logicalId(template, 'AWS::KMS::Key', 'OrdersFieldKey')];
    statements = key.Properties.KeyPolicy.Statement as Statement[];
  });
  const actions = (s: Statement) => ([] as string[]).concat(s.Action).sort();

  test('no account-root kms:*, and no statement with kms:* at all', () => {
    for (const s of statements) {
      assert.ok(!actions(s).some((a) => a === 'kms:*' || a.endsWith(':*')), JSON.stringify(s));
      assert.doesNotMatch(JSON.stringify(s.Principal), /:root/);
    }
  });

  test('administrators manage but cannot use, disable, delete or re-police it; only break-glass can (and deployments re-police)', () => {
    const bySid = Object.fromEntries(statements.filter((s) => s.Sid).map((s) => [s.Sid, s]));
    assert.deepEqual(Object.keys(bySid).sort(), ['Administer', 'BreakGlass', 'Deploy', 'OperatorsUnwrapDataKeys']);
    assert.deepEqual(actions(bySid.Administer), [...KEY_ADMIN_ACTIONS].sort());
    assert.deepEqual(actions(bySid.BreakGlass), [...KEY_ADMIN_ACTIONS, ...KEY_GUARDED_ACTIONS].sort());
    assert.deepEqual(actions(bySid.Deploy), [...KEY_ADMIN_ACTIONS, 'kms:PutKeyPolicy'].sort());
    assert.deepEqual(bySid.BreakGlass.Principal, { AWS: roleOf(template, 'OrdersFieldKeyBreakGlass') });
    assert.match(JSON.stringify(bySid.Deploy.Principal), /cdk-hnb659fds-cfn-exec-role/);
    const crypto = /^kms:(Decrypt|Encrypt|GenerateDataKey|ReEncrypt)/;
    for (const sid of ['Administer', 'BreakGlass', 'Deploy']) assert.ok(!actions(bySid[sid]).some((a) => crypto.test(a)), sid);
    // The break-glass role: assumed only with MFA, and no policy of its own.
    const breakGlass = template.findResources('AWS::IAM::Role')[logicalId(template, 'AWS::IAM::Role', 'OrdersFieldKeyBreakGlass')];
    assert.deepEqual(breakGlass.Properties.AssumeRolePolicyDocument.Statement[0].Condition, { Bool: { 'aws:MultiFactorAuthPresent': 'true' } });
    assert.equal(breakGlass.Properties.Policies, undefined);
  });

  test('only the functions that open personal data (and operators) may use it, each with its encryption context', () => {
    const uses = statements.filter((s) => actions(s).some((a) => a.startsWith('kms:Decrypt') || a.startsWith('kms:Generate')));
    const context = { StringLike: { 'kms:EncryptionContext:tenant': '?*', 'kms:EncryptionContext:subject': '?*' } };
    for (const s of uses) assert.deepEqual(s.Condition, context, JSON.stringify(s.Principal));
    // CDK merges statements of equal actions and conditions: one statement may name several roles.
    const byRole: Record<string, string[]> = {};
    for (const st of uses) {
      for (const p of ([] as unknown[]).concat((st.Principal as { AWS: unknown }).AWS)) {
        const name = JSON.stringify(p).match(/Orders([A-Za-z]+?)(Function)?Role|"(arn:[^"]+)"/)?.slice(1).find(Boolean) as string;
        byRole[name] = actions(st);
      }
    }
    assert.deepEqual(byRole, {
      CommandApi: ['kms:Decrypt', 'kms:GenerateDataKey'],
      QueryApi: ['kms:Decrypt'],
      QueryAdmin: ['kms:Decrypt'],
      Projector: ['kms:Decrypt'],
      ConsumerMailer: ['kms:Decrypt'],
      ConsumerProcess: ['kms:Decrypt', 'kms:GenerateDataKey'],
      [OPERATOR]: ['kms:Decrypt'],
    });
  });

  test('a throwaway stack lets its deployment delete the key; a fixed tenant narrows the context', () => {
    const t = withConsumers({ retainData: false, tenancy: { fixed: 'acme' }, tenantIsolation: true });
    const key = t.findResources('AWS::KMS::Key')[logicalId(t, 'AWS::KMS::Key', 'OrdersFieldKey')];
    const st = key.Properties.KeyPolicy.Statement as Statement[];
    assert.ok(actions(st.find((s) => s.Sid === 'Deploy') as Statement).includes('kms:ScheduleKeyDeletion'));
    for (const s of st.filter((x) => actions(x).includes('kms:Decrypt'))) {
      assert.equal((s.Condition?.StringLike as Json)['kms:EncryptionContext:tenant'], 'acme');
    }
  });

  test('a guarded call on the key (from CloudTrail) raises an alarm', () => {
    const ruleId = logicalId(template, 'AWS::Events::Rule', 'OrdersFieldKeyChangedRule');
    const rule = template.findResources('AWS::Events::Rule')[ruleId];
    assert.deepEqual(rule.Properties.EventPattern, {
      source: ['aws.kms'],
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: {
        eventName: ['DisableKey', 'DisableKeyRotation', 'PutKeyPolicy', 'ScheduleKeyDeletion', 'CreateGrant'],
        resources: { ARN: [getAtt(logicalId(template, 'AWS::KMS::Key', 'OrdersFieldKey'))] },
      },
    });
    assert.equal(rule.Properties.EventBusName, undefined, "the account's default bus, where CloudTrail's events arrive");
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Events',
      MetricName: 'MatchedEvents',
      Dimensions: [{ Name: 'RuleName', Value: { Ref: ruleId } }],
      Threshold: 1,
    });
  });

  test('a named break-glass role replaces the stack-made one', () => {
    const app = new App({ context: cdkContext() });
    const roles = new Stack(app, 'Roles');
    const stack = new StrataStack(app, 'Strata', {
      code: placeholderCode(),
      eventSource: EXAMPLE_EVENT_SOURCE,
      security: { breakGlass: iam.Role.fromRoleArn(roles, 'BreakGlass', 'arn:aws:iam::123456789012:role/break-glass') },
    });
    const t = Template.fromStack(stack);
    assert.equal(Object.keys(t.findResources('AWS::IAM::Role')).filter((id) => id.includes('BreakGlass')).length, 0);
    const key = t.findResources('AWS::KMS::Key')[logicalId(t, 'AWS::KMS::Key', 'OrdersFieldKey')];
    const glass = (key.Properties.KeyPolicy.Statement as Statement[]).find((s) => s.Sid === 'BreakGlass');
    assert.deepEqual(glass?.Principal, { AWS: 'arn:aws:iam::123456789012:role/break-glass' });
  });
});

describe('blast radius', () => {
  test('every Resource: * statement of every role, and why', () => {
    const template = withConsumers();
    const wildcard: string[] = [];
    for (const [id, policy] of Object.entries(template.findResources('AWS::IAM::Policy'))) {
      for (const s of policy.Properties.PolicyDocument.Statement as Statement[]) {
        if (JSON.stringify(s.Resource) === '"*"' || (Array.isArray(s.Resource) && s.Resource.includes('*'))) {
          wildcard.push(`${id.replace(/[0-9A-F]{8}$/, '').replace(/RoleDefaultPolicy$/, '')}: ${actions(s).join(' ')}`);
        }
      }
    }
    // X-Ray accepts no resource-level permission (every function traces); neither does
    // dynamodb:ListStreams, which the stream event source mapping adds to the publisher.
    const xray = 'xray:PutTelemetryRecords xray:PutTraceSegments';
    assert.deepEqual(wildcard.sort(), [
      `OrdersCommandApi: ${xray}`,
      `OrdersConsumerMailerFunction: ${xray}`,
      `OrdersConsumerProcessFunction: ${xray}`,
      `OrdersProjector: ${xray}`,
      `OrdersQueryAdmin: ${xray}`,
      `OrdersQueryApi: ${xray}`,
      `OrdersStreamPublisher: dynamodb:ListStreams ${xray}`,
    ]);
  });
  const actions = (s: Statement) => ([] as string[]).concat(s.Action).sort();

  test('every queue mapping caps its concurrency (default 5); reserved concurrency only where given', () => {
    const template = withConsumers();
    const mappings = Object.values(template.findResources('AWS::Lambda::EventSourceMapping')).filter((m) =>
      JSON.stringify(m.Properties.EventSourceArn).includes('Queue'),
    );
    assert.equal(mappings.length, 3);
    for (const m of mappings) assert.deepEqual(m.Properties.ScalingConfig, { MaximumConcurrency: 5 });
    for (const f of Object.values(template.findResources('AWS::Lambda::Function'))) {
      assert.equal(f.Properties.ReservedConcurrentExecutions, undefined);
    }
  });

  test("the table's recovery window is the one stated (default DynamoDB's 35 days), and only 1 to 35 days", () => {
    const spec = (t: Template) => Object.values(t.findResources('AWS::DynamoDB::Table'))[0].Properties.PointInTimeRecoverySpecification;
    assert.deepEqual(spec(withConsumers()), { PointInTimeRecoveryEnabled: true });
    const seven = new App({ context: cdkContext() });
    const svc = new StrataStack(seven, 'Seven', { code: placeholderCode(), eventSource: EXAMPLE_EVENT_SOURCE, recoveryPeriodDays: 7 });
    assert.deepEqual(spec(Template.fromStack(svc)), { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 7 });
    assert.throws(
      () => new StrataStack(new App({ context: cdkContext() }), 'Bad', { code: placeholderCode(), eventSource: EXAMPLE_EVENT_SOURCE, recoveryPeriodDays: 36 }),
      /recoveryPeriodDays 36: use 1 to 35/,
    );
  });

  test('an upgrade replaces nothing that holds data or an address: the ids of the table, its keys, the bus, the main API, its stage and log groups (as of 701d31a)', () => {
    const t = withConsumers();
    const ids = (type: string) => Object.keys(t.findResources(type)).sort();
    assert.deepEqual(ids('AWS::DynamoDB::Table'), ['OrdersEventStoreTable68616DEF']);
    assert.deepEqual(ids('AWS::KMS::Key'), ['OrdersFieldKeyDA0CA417', 'OrdersTableKeyAACB2EF8']);
    assert.deepEqual(ids('AWS::Events::EventBus'), ['OrdersBusEC605DBA']);
    for (const [type, id] of [
      ['AWS::ApiGatewayV2::Api', 'OrdersApiA821092D'],
      ['AWS::ApiGatewayV2::Stage', 'OrdersApiDefaultStageE4E296DE'],
      ['AWS::Logs::LogGroup', 'OrdersApiAccessLogsEE1CA272'],
      ['AWS::Logs::LogGroup', 'OrdersCommandApiLogs88CCC81E'],
      ['AWS::ApiGatewayV2::Route', 'OrdersApiPOSTorderidcommandsnameB3E7AA66'],
    ]) {
      assert.ok(ids(type).includes(id), `${type} ${id}`);
    }
  });
});

describe('tenant from a token', () => {
  const jwt = { jwt: { issuer: 'https://issuer.example.com', audience: ['strata'] } } as const;
  const synth = (tenancy: StrataStackProps['tenancy']) =>
    Template.fromStack(
      new StrataStack(new App({ context: cdkContext() }), 'Strata', {
        code: placeholderCode(),
        eventSource: EXAMPLE_EVENT_SOURCE,
        tenancy,
        auth: jwt,
      }),
    );

  test('a claim users can write themselves is refused unless the issuer sets it; an allow-list must name valid tenants', () => {
    assert.throws(() => synth({ claim: 'custom:tenant' }), /users can usually write this claim.*pre-token-generation/);
    assert.throws(() => synth({ claim: 'email' }), /users can usually write this claim/);
    assert.throws(() => synth({ claim: 'tenant', allowed: [] }), /tenancy.allowed is empty/);
    assert.throws(() => synth({ claim: 'tenant', allowed: ['acme#S#x'] }), /tenancy.allowed 'acme#S#x'/);
    synth({ claim: 'custom:tenant', claimSetBy: 'issuer' });
  });

  test('the HTTP functions get the claim, the allowed tenants and the scope of each kind of route', () => {
    const template = synth({ claim: 'tenant', allowed: ['acme', 'globex'] });
    const functions = Object.values(template.findResources('AWS::Lambda::Function')).map(
      (f) => f.Properties.Environment.Variables as Record<string, unknown>,
    );
    const http = functions.filter((v) => ['command', 'query', 'admin'].includes(v.STRATA_ROLE as string));
    assert.equal(http.length, 3);
    for (const v of http) {
      assert.deepEqual(
        [v.STRATA_TENANT_CLAIM, v.STRATA_TENANT_ALLOWED, v.STRATA_SCOPE_READ, v.STRATA_SCOPE_WRITE, v.STRATA_SCOPE_ADMIN],
        ['tenant', 'acme,globex', 'strata/read', 'strata/write', 'strata/admin'],
        String(v.STRATA_ROLE),
      );
    }
  });
});

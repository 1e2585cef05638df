// The construct as a team uses it: its own aggregates, read models and consumers, one binary for
// every function, and every tunable as a prop.
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import {
  cdkContext,
  EventSourcedService,
  type EventSourcedServiceProps,
  loadTableSpec,
  placeholderCode,
  serviceCode,
  synthesizeEmulatorTemplate,
} from '../lib';

function service(extra: Partial<EventSourcedServiceProps> = {}, consumers = true) {
  const app = new App({ context: cdkContext() });
  const stack = new Stack(app, 'Ledger');
  const svc = new EventSourcedService(stack, 'Ledger', {
    code: placeholderCode(),
    aggregates: ['account', 'transfer'],
    projections: ['balance', 'transfer-status'],
    eventSource: 'com.example.ledger',
    tenancy: { fixed: 'acme' },
    auth: { iam: true },
    ...extra,
  });
  if (consumers) {
    svc.addConsumer('transfer-process', { eventPattern: { detailType: ['TransferRequested'] }, issuesCommands: true });
    svc.addConsumer('mailer', { functionSettings: { timeout: Duration.seconds(45), memorySize: 512 }, queue: { maxConcurrency: 5 } });
  }
  svc.addOutputs();
  return { app, stack, svc, template: Template.fromStack(stack) };
}

type Statement = { Action: string | string[]; Condition?: Record<string, Record<string, unknown>> };

function statementsOfRole(template: Template, rolePrefix: string): Statement[] {
  const roleId = Object.keys(template.findResources('AWS::IAM::Role')).find((id) => id.startsWith(rolePrefix));
  assert.ok(roleId, `no role ${rolePrefix}`);
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

function leadingKeys(statements: Statement[], action: string): unknown {
  const found = statements.find((s) => ([] as string[]).concat(s.Action).includes(action));
  return found?.Condition?.['ForAllValues:StringLike']?.['dynamodb:LeadingKeys'];
}

describe('a service of its own', () => {
  const { template, svc, app, stack } = service();

  test('one binary: every function runs the same code, told its part by STRATA_ROLE', () => {
    const functions = Object.entries(template.findResources('AWS::Lambda::Function'));
    const parts = functions
      .map(([, f]) => {
        const v = f.Properties.Environment.Variables;
        return `${v.STRATA_ROLE}${v.STRATA_CONSUMER ? `:${v.STRATA_CONSUMER}` : ''}`;
      })
      .sort();
    assert.deepEqual(parts, ['admin', 'command', 'consumer:mailer', 'consumer:transfer-process', 'projector', 'publisher', 'query']);
    const assets = new Set(functions.map(([, f]) => JSON.stringify(f.Properties.Code)));
    assert.equal(assets.size, 1, 'one asset for every function');
  });

  test('routes: each aggregate and read model, nothing else', () => {
    const keys = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((r) => r.Properties.RouteKey).sort();
    assert.deepEqual(keys, [
      'DELETE /admin/subjects/{subject}',
      'GET /account/{id}',
      'GET /account/{id}/events',
      'GET /admin/subjects/{subject}/export',
      'GET /transfer/{id}',
      'GET /transfer/{id}/events',
      'GET /views/balance',
      'GET /views/balance/{id}',
      'GET /views/transfer-status',
      'GET /views/transfer-status/{id}',
      'POST /account/{id}/commands/{name}',
      'POST /transfer/{id}/commands/{name}',
    ]);
  });

  test('a consumer: its rule (pattern and source), queue past its lease, DLQ, alarms', () => {
    const process = svc.consumers['transfer-process'];
    const rule = template.findResources('AWS::Events::Rule');
    const ruleOf = Object.entries(rule).find(([id]) => id.startsWith('LedgerConsumerTransferProcess'));
    assert.ok(ruleOf);
    assert.deepEqual(ruleOf[1].Properties.EventPattern, { source: ['com.example.ledger'], 'detail-type': ['TransferRequested'] });
    assert.ok(ruleOf[1].Properties.Targets[0].DeadLetterConfig, 'undeliverable events go to the delivery DLQ');
    const queues = template.findResources('AWS::SQS::Queue');
    const visibility = (prefix: string) =>
      Object.entries(queues).find(([id]) => id.startsWith(prefix))?.[1].Properties.VisibilityTimeout;
    // 30 s timeout: max(6 x 30, 120 s lease + 30) = 180; mailer 45 s: max(270, 165) = 270.
    assert.equal(visibility('LedgerConsumerTransferProcessFeedQueue'), 180);
    assert.equal(visibility('LedgerConsumerMailerFeedQueue'), 270);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 5 },
    });
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    const metric = (name: string) => alarms.filter((a) => a.Properties.MetricName === name).length;
    assert.equal(metric('ApproximateNumberOfMessagesVisible'), 5, 'publisher, delivery, projector and two consumers');
    assert.equal(metric('Errors'), 7);
    assert.equal(process.name, 'transfer-process');
  });

  test('a consumer role: effect records only, unless it issues commands', () => {
    // Partition tags from the TableSpec Rust exports (stream, data_key, idempotency).
    const tag = (name: string) => `*#${loadTableSpec().partition_classes.find((c) => c.name === name)?.tag}#*`;
    const mailer = statementsOfRole(template, 'LedgerConsumerMailerFunctionRole');
    assert.deepEqual(leadingKeys(mailer, 'dynamodb:PutItem'), [tag('idempotency')]);
    assert.deepEqual(leadingKeys(mailer, 'dynamodb:DeleteItem'), [tag('idempotency')]);
    const actions = mailer.flatMap((s) => ([] as string[]).concat(s.Action));
    assert.ok(actions.includes('kms:Decrypt') && !actions.includes('kms:GenerateDataKey'), 'opens sealed fields, creates no key');
    const process = statementsOfRole(template, 'LedgerConsumerTransferProcessFunctionRole');
    assert.deepEqual(leadingKeys(process, 'dynamodb:PutItem'), [tag('stream'), tag('data_key'), tag('idempotency')]);
    assert.ok(process.flatMap((s) => ([] as string[]).concat(s.Action)).includes('kms:GenerateDataKey'));
  });

  test('outputs: every name a test or operator needs, per consumer too', () => {
    const outputs = Object.keys(template.toJSON().Outputs).sort();
    for (const name of ['TableName', 'EventBusName', 'ProjectorQueueUrl', 'ConsumerTransferProcessQueueUrl', 'ConsumerMailerDeadLetterQueueUrl']) {
      assert.ok(outputs.includes(name), name);
    }
  });

  test("the emulator's template keeps the consumers' rules and queues with their outputs", () => {
    const emulated = JSON.parse(synthesizeEmulatorTemplate(app, stack));
    const types = Object.values(emulated.Resources as Record<string, { Type: string }>).map((r) => r.Type);
    // The projector's, two consumers' and the field key's change rule.
    assert.equal(types.filter((t) => t === 'AWS::Events::Rule').length, 4);
    assert.ok(emulated.Outputs.ConsumerTransferProcessQueueArn);
  });
});

describe('what each function starts with', () => {
  // What strata_lambda::runtime reads at start, by role (its module docs' table).
  const required: Record<string, string[]> = {
    command: ['STRATA_TABLE', 'STRATA_KMS_KEY_ID', 'STRATA_TENANT', 'STRATA_SNAPSHOT_PRUNING'],
    query: ['STRATA_TABLE', 'STRATA_KMS_KEY_ID', 'STRATA_TENANT'],
    admin: ['STRATA_TABLE', 'STRATA_KMS_KEY_ID', 'STRATA_TENANT'],
    projector: ['STRATA_TABLE', 'STRATA_KMS_KEY_ID'],
    consumer: ['STRATA_TABLE', 'STRATA_KMS_KEY_ID', 'STRATA_CONSUMER', 'STRATA_CONSUMER_LEASE_SECS'],
    publisher: ['STRATA_TABLE', 'STRATA_KMS_KEY_ID', 'STRATA_EVENT_BUS', 'STRATA_EVENT_SOURCE', 'STRATA_SNAPSHOT_KEEP'],
  };

  test('every role has the variables it reads at start; everything that commits writes one format', () => {
    const { template } = service({ commitFormat: 'v2' });
    const functions = Object.values(template.findResources('AWS::Lambda::Function'));
    assert.equal(functions.length, 7);
    for (const f of functions) {
      const vars = f.Properties.Environment.Variables;
      for (const name of required[vars.STRATA_ROLE]) assert.ok(vars[name] !== undefined, `${vars.STRATA_ROLE} lacks ${name}`);
      assert.equal(vars.STRATA_COMMIT_FORMAT, 'v2', vars.STRATA_ROLE);
    }
    const consumer = functions.find((f) => f.Properties.Environment.Variables.STRATA_CONSUMER === 'transfer-process');
    assert.equal(consumer?.Properties.Environment.Variables.STRATA_CONSUMER_LEASE_SECS, '120');
  });

  test('one invoke permission per API function, whatever the number of routes', () => {
    const { template } = service();
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission')).filter(
      (p) => p.Properties.Principal === 'apigateway.amazonaws.com',
    );
    assert.equal(permissions.length, 3, 'command, query and admin');
  });
});

describe('tunables', () => {
  test('memory, timeout, reserved concurrency and throttles as props', () => {
    const { template } = service(
      {
        functionSettings: { command: { memorySize: 1024, timeout: Duration.seconds(25), reservedConcurrency: 50 } },
        throttle: { rateLimit: 10, burstLimit: 20 },
        projector: { maxConcurrency: 2, batchSize: 5 },
      },
      false,
    );
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 1024,
      Timeout: 25,
      ReservedConcurrentExecutions: 50,
      Environment: { Variables: Match.objectLike({ STRATA_ROLE: 'command' }) },
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingBurstLimit: 20, ThrottlingRateLimit: 10 },
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { BatchSize: 5, ScalingConfig: { MaximumConcurrency: 2 } });
  });

  test('no read models: no projector, no projector queue', () => {
    const { template } = service({ projections: [] }, false);
    const roles = Object.values(template.findResources('AWS::Lambda::Function')).map((f) => f.Properties.Environment.Variables.STRATA_ROLE);
    assert.ok(!roles.includes('projector'));
    assert.ok(!Object.keys(template.toJSON().Outputs).includes('ProjectorQueueUrl'));
  });

  test('code per role, a consumer with code of its own', () => {
    const app = new App({ context: cdkContext() });
    const stack = new Stack(app, 'S');
    const seen: string[] = [];
    const svc = new EventSourcedService(stack, 'S', {
      code: (role, consumer) => {
        seen.push(consumer ? `${role}:${consumer}` : role);
        return lambda.Code.fromAsset(`${__dirname}/../placeholder`);
      },
      aggregates: ['ticket'],
      projections: [],
      eventSource: 'com.example.desk',
      tenancy: { fixed: 'acme' },
      auth: { iam: true },
    });
    svc.addConsumer('notifier', { code: serviceCode(lambda.Code.fromAsset(`${__dirname}/../placeholder`))('consumer') });
    assert.deepEqual(seen, ['command', 'query', 'admin', 'publisher']);
  });

  test('refused at synth, with the reason', () => {
    const refused = (extra: Partial<EventSourcedServiceProps>, pattern: RegExp) =>
      assert.throws(() => service(extra, false), pattern);
    refused({ aggregates: [] }, /at least one category/);
    refused({ aggregates: ['views'] }, /reserved/);
    refused({ aggregates: ['sales-order'] }, /no -: StreamId refuses it/);
    refused({ aggregates: ['a/b'] }, /aggregate category 'a\/b'/);
    refused({ aggregates: ['order', 'order'] }, /listed twice/);
    refused({ projections: ['bad/name'] }, /projection 'bad\/name'/);
    refused({ functionSettings: { query: { memorySize: 64 } } }, /memorySize 64/);
    refused({ functionSettings: { command: { reservedConcurrency: 0 } } }, /reservedConcurrency 0/);
    // Rust allows upper case in names (a category `SalesOrder`, a consumer `TransferProcess`).
    service({ aggregates: ['SalesOrder'], projections: ['OrderSummary'] }, false);
    refused({ functionSettings: { publisher: { timeout: Duration.minutes(20) } } }, /timeout 1200 s/);
    refused({ throttle: { rateLimit: 0, burstLimit: 1 } }, /throttle/);
    refused({ projector: { maxConcurrency: 1 } }, /maxConcurrency 1/);
    const { svc } = service({}, false);
    assert.throws(() => svc.addConsumer('slow', { functionSettings: { timeout: Duration.seconds(150) } }), /exceeds its lease/);
    svc.addConsumer('once');
    assert.throws(() => svc.addConsumer('once'), /added twice/);
    assert.throws(() => svc.addConsumer('Bad Name'), /consumer 'Bad Name'/);
    assert.throws(() => svc.addConsumer('once_'), /share construct ids/);
    assert.throws(() => svc.addConsumer('elsewhere', { eventPattern: { source: ['com.example.payments'] } }), /carries com.example.ledger only/);
    assert.throws(() => svc.addConsumer('sneaky', { environment: { STRATA_ROLE: 'all' } }), /STRATA_ROLE is the construct's/);
    assert.throws(
      () => svc.addConsumer('starved', { functionSettings: { reservedConcurrency: 3 } }),
      /reservedConcurrency 3 is below the queue mapping's default maxConcurrency 5/,
    );
    assert.throws(
      () => svc.addConsumer('capped', { functionSettings: { reservedConcurrency: 4 }, queue: { maxConcurrency: 8 } }),
      /below maxConcurrency 8/,
    );
    svc.addConsumer('capped', { functionSettings: { reservedConcurrency: 4 }, queue: { maxConcurrency: 4 } });
    refused({ functionSettings: { projector: { reservedConcurrency: 2 } } }, /projector: reservedConcurrency 2/);
  });
});

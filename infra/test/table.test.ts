// The deployed table is the table the Rust store needs: its CloudFormation definition, read back into
// TableSpec form, equals infra/table-spec.json (exported from strata_dynamodb::TableSpec::strata()).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { loadTableSpec } from '../lib/table-spec';
import { example } from './helpers';

type KeySchema = { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];

test('the synthesized table equals the Rust TableSpec', () => {
  const { template } = example();
  const tables = Object.values(template.findResources('AWS::DynamoDB::Table'));
  assert.equal(tables.length, 1);
  const p = tables[0].Properties;
  const types = Object.fromEntries(
    (p.AttributeDefinitions as { AttributeName: string; AttributeType: string }[]).map((a) => [a.AttributeName, a.AttributeType]),
  );
  const key = (schema: KeySchema, type: 'HASH' | 'RANGE') => {
    const name = schema.find((k) => k.KeyType === type)?.AttributeName;
    return name === undefined ? undefined : { name, type: types[name] };
  };
  const fromTemplate = {
    partition_key: key(p.KeySchema, 'HASH'),
    sort_key: key(p.KeySchema, 'RANGE'),
    billing_mode: p.BillingMode,
    stream_view_type: p.StreamSpecification.StreamViewType,
    ttl_attribute: p.TimeToLiveSpecification.Enabled ? p.TimeToLiveSpecification.AttributeName : undefined,
    point_in_time_recovery: p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled,
    global_secondary_indexes: (p.GlobalSecondaryIndexes as { IndexName: string; KeySchema: KeySchema; Projection: { ProjectionType: string } }[]).map(
      (i) => ({
        name: i.IndexName,
        partition_key: key(i.KeySchema, 'HASH'),
        sort_key: key(i.KeySchema, 'RANGE'),
        projection: i.Projection.ProjectionType,
      }),
    ),
  };
  const spec = loadTableSpec();
  assert.deepEqual(fromTemplate, {
    partition_key: spec.partition_key,
    sort_key: spec.sort_key,
    billing_mode: spec.billing_mode,
    stream_view_type: spec.stream_view_type,
    ttl_attribute: spec.ttl_attribute,
    point_in_time_recovery: spec.point_in_time_recovery,
    global_secondary_indexes: spec.global_secondary_indexes.map(({ purpose: _, ...index }) => index),
  });
  // Every attribute defined is a key of the table or an index (CloudFormation refuses others).
  assert.equal(Object.keys(types).length, 2 + 2 * spec.global_secondary_indexes.length);
});

test('the table is encrypted with its own customer-managed key, kept on stack deletion by default', () => {
  const { template } = example();
  const [id, table] = Object.entries(template.findResources('AWS::DynamoDB::Table'))[0];
  assert.equal(table.Properties.SSESpecification.SSEEnabled, true);
  assert.equal(table.Properties.SSESpecification.SSEType, 'KMS');
  assert.match(table.Properties.SSESpecification.KMSMasterKeyId['Fn::GetAtt'][0], /^OrdersTableKey/);
  assert.equal(table.DeletionPolicy, 'Retain', id);
  assert.equal(table.Properties.DeletionProtectionEnabled, true);
  const throwaway = example({ retainData: false }).template;
  const [, gone] = Object.entries(throwaway.findResources('AWS::DynamoDB::Table'))[0];
  assert.equal(gone.DeletionPolicy, 'Delete');
});

test('a spec that is not a Strata TableSpec is refused with the file named', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-spec-'));
  try {
    const file = path.join(dir, 'spec.json');
    fs.writeFileSync(file, JSON.stringify({ billing_mode: 'PAY_PER_REQUEST' }));
    assert.throws(() => loadTableSpec(file), (e: Error) => e.message === `${file}: not a Strata TableSpec (keys or stream missing)`);
    fs.writeFileSync(file, JSON.stringify({ ...loadTableSpec(), billing_mode: 'PROVISIONED' }));
    assert.throws(() => loadTableSpec(file), /billing_mode PROVISIONED is not supported/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

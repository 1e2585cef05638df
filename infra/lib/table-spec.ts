// The table's shape comes from the Rust side: `infra/table-spec.json` is
// `strata_dynamodb::TableSpec::strata()` exported (a Rust test fails when it is stale). Nothing here
// repeats a key name, an index or a stream setting: the CDK table is built from that file, and a test
// checks the synthesized table against it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/** A key attribute: name and DynamoDB scalar type. */
export interface KeySpec {
  readonly name: string;
  readonly type: 'S' | 'N' | 'B';
}

/** A global secondary index of the table. */
export interface IndexSpec {
  readonly name: string;
  readonly partition_key: KeySpec;
  readonly sort_key?: KeySpec;
  readonly projection: 'ALL' | 'KEYS_ONLY';
  readonly purpose: string;
}

/** A class of partitions: keys `{tenant}#{tag}#...` (what `dynamodb:LeadingKeys` conditions match). */
export interface PartitionClassSpec {
  readonly name: string;
  readonly tag: string;
  readonly holds: string;
}

/** The table as the Rust store needs it (`strata_dynamodb::TableSpec`). */
export interface TableSpec {
  readonly partition_key: KeySpec;
  readonly sort_key: KeySpec;
  readonly billing_mode: 'PAY_PER_REQUEST';
  readonly stream_view_type: 'NEW_IMAGE' | 'NEW_AND_OLD_IMAGES';
  readonly ttl_attribute: string;
  readonly point_in_time_recovery: boolean;
  readonly global_secondary_indexes: readonly IndexSpec[];
  readonly partition_classes: readonly PartitionClassSpec[];
  readonly kind_attribute: string;
  readonly published_kind: string;
  readonly snapshot_kind: string;
  /**
   * Sort key prefixes of items never changed once written (commits, audit records): the publisher's
   * mapping passes their MODIFY and REMOVE records, which it reports as tampering.
   */
  readonly immutable_sort_key_prefixes: readonly string[];
}

/** Where the exported spec lives in this repository. */
export const TABLE_SPEC_FILE = path.join(__dirname, '..', 'table-spec.json');

/** Reads and checks an exported TableSpec (default: `infra/table-spec.json`). */
export function loadTableSpec(file: string = TABLE_SPEC_FILE): TableSpec {
  const spec = JSON.parse(fs.readFileSync(file, 'utf8')) as TableSpec;
  if (spec.billing_mode !== 'PAY_PER_REQUEST') {
    throw new Error(`${file}: billing_mode ${spec.billing_mode} is not supported`);
  }
  if (!spec.partition_key?.name || !spec.sort_key?.name || !spec.stream_view_type) {
    throw new Error(`${file}: not a Strata TableSpec (keys or stream missing)`);
  }
  // The publisher's filter is built from these: a spec without one would filter out everything.
  if (!Array.isArray(spec.immutable_sort_key_prefixes) || spec.immutable_sort_key_prefixes.length === 0) {
    throw new Error(`${file}: immutable_sort_key_prefixes missing (export the spec again from strata-dynamodb)`);
  }
  for (const field of ['kind_attribute', 'published_kind', 'snapshot_kind'] as const) {
    if (!spec[field]) throw new Error(`${file}: ${field} missing (export the spec again from strata-dynamodb)`);
  }
  return spec;
}

/** Properties of {@link EventStoreTable}. */
export interface EventStoreTableProps {
  /** The exported TableSpec. */
  readonly spec: TableSpec;
  /** Customer-managed key for encryption at rest (table, indexes, stream). */
  readonly encryptionKey: kms.IKey;
  /** What happens to the table when the stack is deleted. */
  readonly removalPolicy: RemovalPolicy;
  /**
   * Days a point-in-time restore reaches back (1 to 35; default 35, DynamoDB's): also how long a
   * forgotten subject's wrapped data key stays in the table's backups (see README, "Erasure timeline").
   */
  readonly recoveryPeriodDays?: number;
}

/** The single-table event store, exactly as the TableSpec describes it. */
export class EventStoreTable extends Construct {
  /** The table. */
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: EventStoreTableProps) {
    super(scope, id);
    const { spec } = props;
    const days = props.recoveryPeriodDays;
    if (days !== undefined && !(Number.isInteger(days) && days >= 1 && days <= 35)) {
      throw new Error(`recoveryPeriodDays ${days}: use 1 to 35 whole days`);
    }
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: attribute(spec.partition_key),
      sortKey: attribute(spec.sort_key),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      stream: dynamodb.StreamViewType[spec.stream_view_type],
      timeToLiveAttribute: spec.ttl_attribute,
      pointInTimeRecoverySpecification: {
        pointInTimeRecoveryEnabled: spec.point_in_time_recovery,
        ...(props.recoveryPeriodDays !== undefined ? { recoveryPeriodInDays: props.recoveryPeriodDays } : {}),
      },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.encryptionKey,
      deletionProtection: props.removalPolicy === RemovalPolicy.RETAIN,
      removalPolicy: props.removalPolicy,
    });
    for (const index of spec.global_secondary_indexes) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: attribute(index.partition_key),
        sortKey: index.sort_key && attribute(index.sort_key),
        projectionType: dynamodb.ProjectionType[index.projection],
      });
    }
  }
}

function attribute(key: KeySpec): dynamodb.Attribute {
  const type = { S: dynamodb.AttributeType.STRING, N: dynamodb.AttributeType.NUMBER, B: dynamodb.AttributeType.BINARY };
  return { name: key.name, type: type[key.type] };
}

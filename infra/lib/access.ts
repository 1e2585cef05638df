// Least-privilege statements on the event store table and the field-encryption key.
//
// Every partition key starts with `{tenant}#{tag}#` (tags from the TableSpec's partition classes), so
// `dynamodb:LeadingKeys` confines a write to the class of items a function owns (the projector writes
// only views) and, with a fixed tenant, every request to that tenant's items.
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Stack, Validations } from 'aws-cdk-lib';
import type { TableSpec } from './table-spec';

/** A class of partitions, by its name in the TableSpec. */
export type PartitionClassName = 'stream' | 'data_key' | 'idempotency' | 'audit' | 'view';

/** Grants on one table, scoped by partition class and (optionally) tenant. */
export class TableAccess {
  constructor(
    private readonly table: dynamodb.ITable,
    private readonly spec: TableSpec,
    /** The one tenant every key must start with, or undefined for any tenant. */
    private readonly tenant: string | undefined,
  ) {}

  /** The `dynamodb:LeadingKeys` patterns of some partition classes. */
  leadingKeys(classes: readonly PartitionClassName[]): string[] {
    return classes.map((name) => {
      const found = this.spec.partition_classes.find((c) => c.name === name);
      if (!found) throw new Error(`the TableSpec has no partition class '${name}'`);
      return `${this.tenant ?? '*'}#${found.tag}#*`;
    });
  }

  /** Reads (GetItem, Query) on the table and the named indexes; any partition class of the tenant. */
  read(grantee: iam.IGrantable, indexes: readonly string[]): void {
    for (const index of indexes) {
      if (!this.spec.global_secondary_indexes.some((i) => i.name === index)) {
        throw new Error(`the TableSpec has no index '${index}'`);
      }
    }
    const resources = [this.table.tableArn, ...indexes.map((i) => `${this.table.tableArn}/index/${i}`)];
    const allClasses = this.spec.partition_classes.map((c) => c.name as PartitionClassName);
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadEventStore',
        actions: ['dynamodb:GetItem', 'dynamodb:Query'],
        resources,
        conditions: this.tenant ? this.condition(allClasses) : undefined,
      }),
    );
  }

  /**
   * Query on one index only (no GetItem, no Query of the table) for keys of the given partition
   * classes; the index's partition key holds such a key (the `snapshots` index: the stream's `pk`).
   */
  queryIndex(grantee: iam.IGrantable, index: string, classes: readonly PartitionClassName[]): void {
    if (!this.spec.global_secondary_indexes.some((i) => i.name === index)) {
      throw new Error(`the TableSpec has no index '${index}'`);
    }
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: `QueryIndex${index.replace(/[^A-Za-z0-9]/g, '')}`,
        actions: ['dynamodb:Query'],
        resources: [`${this.table.tableArn}/index/${index}`],
        conditions: this.tenant ? this.condition(classes) : undefined,
      }),
    );
  }

  /** Conditional writes (PutItem, alone or inside TransactWriteItems) to the given partition classes. */
  put(grantee: iam.IGrantable, classes: readonly PartitionClassName[]): void {
    this.write(grantee, 'dynamodb:PutItem', classes);
  }

  /** Deletes in the given partition classes. */
  delete(grantee: iam.IGrantable, classes: readonly PartitionClassName[]): void {
    this.write(grantee, 'dynamodb:DeleteItem', classes);
  }

  private write(grantee: iam.IGrantable, action: string, classes: readonly PartitionClassName[]): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: [action], resources: [this.table.tableArn], conditions: this.condition(classes) }),
    );
  }

  private condition(classes: readonly PartitionClassName[]): Record<string, unknown> {
    return { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': this.leadingKeys(classes) } };
  }
}

/**
 * Use of the customer-managed key that encrypts the table (and its stream) at rest, only through
 * DynamoDB: `reader` may decrypt, a writer may also encrypt.
 */
export function grantTableKey(key: kms.IKey, grantee: iam.IGrantable, write: boolean): void {
  const actions = ['kms:Decrypt', 'kms:DescribeKey'];
  if (write) actions.push('kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*');
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: write ? 'UseTableKeyThroughDynamoDB' : 'ReadTableKeyThroughDynamoDB',
      actions,
      resources: [key.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${Stack.of(key).region}.amazonaws.com` } },
    }),
  );
  if (write && grantee.grantPrincipal instanceof iam.Role) {
    const reason =
      'Table encryption at rest: only through DynamoDB (kms:ViaService), with the actions of the key policy ' +
      'AWS gives DynamoDB; the function never calls KMS with this key itself.';
    Validations.of(grantee.grantPrincipal).acknowledge(
      { id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]', reason },
      { id: 'AwsSolutions-IAM5[Action::kms:ReEncrypt*]', reason },
    );
  }
}

/**
 * Use of the key that wraps the per-subject data keys of personal fields (strata-kms): `Decrypt`, and
 * `GenerateDataKey` when the function may create a subject's key. Every call must carry the
 * `tenant` and `subject` encryption context strata-kms sends (and the deployment's tenant, when fixed).
 * Granted twice: in the key's own policy (which names each role, since it trusts no IAM policy of the
 * account) and in the role's policy (what the role says it does, for review and cdk-nag).
 */
export function grantFieldKey(
  key: kms.IKey,
  grantee: iam.IGrantable,
  generate: boolean,
  tenant: string | undefined,
): void {
  const actions = generate ? ['kms:Decrypt', 'kms:GenerateDataKey'] : ['kms:Decrypt'];
  const conditions = {
    StringLike: {
      'kms:EncryptionContext:tenant': tenant ?? '?*',
      'kms:EncryptionContext:subject': '?*',
    },
  };
  const sid = generate ? 'WrapAndUnwrapDataKeys' : 'UnwrapDataKeys';
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({ sid, actions, resources: [key.keyArn], conditions }),
  );
  key.addToResourcePolicy(
    new iam.PolicyStatement({ principals: [grantee.grantPrincipal], actions, resources: ['*'], conditions }),
  );
}

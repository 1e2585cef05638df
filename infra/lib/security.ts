// The boundaries that hold against a compromised function, a forged event and an account admin:
// who may put events on the service's bus, who may send to its queues, who may use or manage the
// field key (and the alarm when its state or policy changes). See infra/README.md, "Threat model".
import { Aws, DefaultStackSynthesizer, Duration, Fn, Lazy, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/** Who, beyond the service's own functions, may do what (every principal is a role ARN). */
export interface ServiceSecurityProps {
  /**
   * Operators: may put events on the bus (`strata replay`), send to the service's queues (a
   * dead-letter redrive) and unwrap data keys with a tenant and subject encryption context (the CLI's
   * `subjects export`). Default: none.
   */
  readonly operators?: readonly string[];
  /**
   * Key administrators: may describe, tag and rotate the field key and cancel its deletion, never use
   * it, disable it, schedule its deletion or change its policy. Default: none.
   */
  readonly keyAdmins?: readonly string[];
  /**
   * The break-glass role, the only principal that may disable the field key, schedule its deletion or
   * change its policy outside a deployment (each such call raises `FieldKeyChangedAlarm`). Default: a
   * role of the stack that principals of the account may assume only with MFA, and with no policy of
   * its own.
   */
  readonly breakGlass?: iam.IRole;
  /**
   * The role CloudFormation deploys the stack with: it keeps the field key's policy current as
   * functions come and go (`kms:PutKeyPolicy`, alarmed like any other change). Default: the CDK
   * bootstrap's CloudFormation execution role (`DefaultStackSynthesizer`); required with another
   * synthesizer.
   */
  readonly deployRole?: string;
}

/** What a key administrator may do: manage, never use, disable, delete or re-police. */
export const KEY_ADMIN_ACTIONS = [
  'kms:CancelKeyDeletion',
  'kms:DescribeKey',
  'kms:EnableKey',
  'kms:EnableKeyRotation',
  'kms:GetKeyPolicy',
  'kms:GetKeyRotationStatus',
  'kms:ListGrants',
  'kms:ListKeyPolicies',
  'kms:ListResourceTags',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:UpdateKeyDescription',
] as const;

/** What only the break-glass role (and, for the policy, deployments) may do; each call is alarmed. */
export const KEY_GUARDED_ACTIONS = ['kms:DisableKey', 'kms:DisableKeyRotation', 'kms:PutKeyPolicy', 'kms:ScheduleKeyDeletion'] as const;

/** The CloudTrail event names of {@link KEY_GUARDED_ACTIONS}, and of grants (which would bypass the policy). */
const GUARDED_EVENT_NAMES = ['DisableKey', 'DisableKeyRotation', 'PutKeyPolicy', 'ScheduleKeyDeletion', 'CreateGrant'];

/**
 * The key that wraps the per-subject data keys, with an explicit policy: no account-root `kms:*`, so no
 * IAM policy in the account can grant its use. Only the roles named in it (the functions', each with
 * its encryption-context condition, see `grantFieldKey`; operators) may use it. Made in the caller's
 * scope under `id`, so that a stack deployed before this policy keeps its key (a new logical id would
 * replace the key, and every wrapped data key with it).
 */
export function fieldKey(
  scope: Construct,
  id: string,
  props: ServiceSecurityProps & { readonly removalPolicy: RemovalPolicy; readonly destroyable: boolean },
): { key: kms.Key; breakGlass: iam.IRole } {
  const breakGlass =
    props.breakGlass ??
    new iam.Role(scope, `${id}BreakGlass`, {
      description: 'Break-glass for the Strata field key: disable, schedule deletion, change policy (alarmed)',
      assumedBy: new iam.AccountPrincipal(Aws.ACCOUNT_ID).withConditions({
        Bool: { 'aws:MultiFactorAuthPresent': 'true' },
      }),
    });
  const deployRole = props.deployRole ?? defaultDeployRole(scope);
  const statement = (sid: string, principals: readonly string[], actions: readonly string[]) =>
    new iam.PolicyStatement({
      sid,
      principals: principals.map((arn) => new iam.ArnPrincipal(arn)),
      actions: [...actions],
      resources: ['*'], // In a key policy, `*` is this key.
    });
  const key = new kms.Key(scope, id, {
    description: 'Wraps the per-subject data keys that seal personal fields (crypto-shredding)',
    enableKeyRotation: true,
    removalPolicy: props.removalPolicy,
    policy: new iam.PolicyDocument({
      statements: [
        // The deployment keeps the policy current (and, for a throwaway stack, deletes the key).
        statement('Deploy', [deployRole], [
          ...KEY_ADMIN_ACTIONS,
          'kms:PutKeyPolicy',
          ...(props.destroyable ? ['kms:ScheduleKeyDeletion'] : []),
        ]),
        statement('BreakGlass', [breakGlass.roleArn], [...KEY_ADMIN_ACTIONS, ...KEY_GUARDED_ACTIONS]),
        ...(props.keyAdmins?.length ? [statement('Administer', props.keyAdmins, KEY_ADMIN_ACTIONS)] : []),
      ],
    }),
  });
  if (props.operators?.length) {
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OperatorsUnwrapDataKeys',
        principals: props.operators.map((arn) => new iam.ArnPrincipal(arn)),
        actions: ['kms:Decrypt'],
        resources: ['*'],
        conditions: { StringLike: { 'kms:EncryptionContext:tenant': '?*', 'kms:EncryptionContext:subject': '?*' } },
      }),
    );
  }
  return { key, breakGlass };
}

/**
 * A rule on CloudTrail's record of a guarded call on the key (disable, schedule deletion, policy
 * change, grant), and an alarm when it matches. EventBridge receives these records (on the account's
 * default bus) only from a CloudTrail trail that logs management events: see infra/README.md.
 */
export function keyChangeAlarm(scope: Construct, id: string, key: kms.IKey): cloudwatch.Alarm {
  const rule = new events.Rule(scope, `${id}Rule`, {
    description: 'A guarded call on the Strata field key (disable, schedule deletion, policy change, grant)',
    eventPattern: {
      source: ['aws.kms'],
      detailType: ['AWS API Call via CloudTrail'],
      detail: { eventName: GUARDED_EVENT_NAMES, resources: { ARN: [key.keyArn] } },
    },
  });
  return new cloudwatch.Metric({
    namespace: 'AWS/Events',
    metricName: 'MatchedEvents',
    dimensionsMap: { RuleName: rule.ruleName },
    period: Duration.minutes(5),
    statistic: 'Sum',
  }).createAlarm(scope, `${id}Alarm`, {
    alarmDescription:
      'The field key was disabled, scheduled for deletion, re-policed or granted: check CloudTrail (a deployment that adds or removes a function changes its policy)',
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
}

function defaultDeployRole(scope: Construct): string {
  const synthesizer = Stack.of(scope).synthesizer;
  if (!(synthesizer instanceof DefaultStackSynthesizer)) {
    throw new Error(
      'security.deployRole: name the role CloudFormation deploys with (the field key policy must let deployments update it; this stack does not use the DefaultStackSynthesizer)',
    );
  }
  // The bootstrap's ARN holds `${AWS::AccountId}` and `${AWS::Partition}` placeholders for an
  // environment-agnostic stack: CloudFormation substitutes them.
  const arn = synthesizer.cloudFormationExecutionRoleArn;
  return arn.includes('${') ? Fn.sub(arn) : arn;
}

/**
 * Only these principals may put events on the bus: an explicit deny for every other principal, so an
 * identity policy elsewhere in the account (`events:PutEvents` on `*`) cannot forge the service's events.
 * `principals` may grow until synth (consumers are added later).
 */
export function onlyPutters(bus: events.EventBus, principals: () => string[]): void {
  bus.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'OnlyThePublisherPutsEvents',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['events:PutEvents'],
      resources: [bus.eventBusArn],
      conditions: { ArnNotEquals: { 'aws:PrincipalArn': Lazy.list({ produce: principals }) } },
    }),
  );
}

/**
 * Only what feeds a queue may send to it: its rules (EventBridge with `aws:SourceArn`), the named
 * principals (a function whose failures it receives) and operators (a redrive). Everything else is
 * denied, whatever its identity policy says. Both lists may grow until synth.
 */
export function onlySenders(queue: sqs.Queue, from: { rules?: () => string[]; principals?: () => string[] }): void {
  const rules = from.rules ?? (() => []);
  const principals = from.principals ?? (() => []);
  // Conditions of one statement are AND'ed: denied unless the sender is one of the rules or one of
  // the principals. A missing key (no aws:SourceArn on a direct send, no aws:PrincipalArn for the
  // events service) makes a negated condition true.
  queue.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'OnlyItsFeedSends',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['sqs:SendMessage'],
      resources: [queue.queueArn],
      conditions: {
        ArnNotEquals: {
          'aws:SourceArn': Lazy.list({ produce: () => orNone(rules()) }),
          'aws:PrincipalArn': Lazy.list({ produce: () => orNone(principals()) }),
        },
      },
    }),
  );
}

// An empty list would drop the condition key and deny everyone, or worse, be refused by the service;
// an ARN no principal or rule can have keeps the statement's meaning.
function orNone(arns: string[]): string[] {
  return arns.length > 0 ? arns : [`arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role/strata-no-such-sender`];
}

// One Rust Lambda function as Strata deploys it: arm64, provided.al2023, its own role (no managed
// policies: only its log group, plus what the service grants it), its own log group with a retention,
// and an alarm on errors.
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** The tunables of one function (every one has a default the construct documents). */
export interface FunctionSettings {
  /** Memory in MB (128 to 10240); CPU grows with it. */
  readonly memorySize?: number;
  /** Timeout. */
  readonly timeout?: Duration;
  /**
   * Reserved concurrency: the most instances that run at once (and a share of the account's
   * concurrency kept for this function). Default: none reserved (the account's pool).
   */
  readonly reservedConcurrency?: number;
}

/** Properties of {@link StrataFunction}. */
export interface StrataFunctionProps {
  /** Its part of the service (`STRATA_ROLE`, and the name in its role's description). */
  readonly role: string;
  /** Its code. */
  readonly code: lambda.Code;
  /** What the function does (its description). */
  readonly description: string;
  /** Environment (typed configuration of the function, see functions/README.md). */
  readonly environment: Record<string, string>;
  /** Timeout. */
  readonly timeout: Duration;
  /** Memory (MB). */
  readonly memorySize: number;
  /** Reserved concurrency (default none). */
  readonly reservedConcurrency?: number;
  /** Log retention. */
  readonly logRetention: logs.RetentionDays;
  /** Removal policy of the log group. */
  readonly removalPolicy: RemovalPolicy;
  /** Why else the role needs `Resource: *`, if it does (for the cdk-nag acknowledgment). */
  readonly extraWildcardReason?: string;
  /** Alarm action for errors, if any. */
  readonly alarmAction?: cloudwatch.IAlarmAction;
}

/** A Strata function with its role, log group and error alarm. */
export class StrataFunction extends Construct {
  /** The function. */
  readonly function: lambda.Function;
  /** Its execution role. */
  readonly role: iam.Role;
  /** Its log group. */
  readonly logGroup: logs.LogGroup;
  /** Fires when an invocation fails. */
  readonly errorsAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: StrataFunctionProps) {
    super(scope, id);
    checkSettings(id, props);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of ${props.role}`,
    });
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn, `${this.logGroup.logGroupArn}:log-stream:*`],
      }),
    );
    this.function = new lambda.Function(this, 'Function', {
      description: props.description,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: props.code,
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      memorySize: props.memorySize,
      timeout: props.timeout,
      reservedConcurrentExecutions: props.reservedConcurrency,
      environment: { RUST_LOG: 'info', ...props.environment },
      tracing: lambda.Tracing.ACTIVE,
    });
    this.errorsAlarm = this.function
      .metricErrors({ period: Duration.minutes(5), statistic: 'Sum' })
      .createAlarm(this, 'Errors', {
        alarmDescription: `${props.role}: an invocation failed (see its log group)`,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    if (props.alarmAction) this.errorsAlarm.addAlarmAction(props.alarmAction);

    const logGroupId = Stack.of(this).getLogicalId(this.logGroup.node.defaultChild as logs.CfnLogGroup);
    Validations.of(this.role).acknowledge(
      {
        id: `AwsSolutions-IAM5[Resource::<${logGroupId}.Arn>:log-stream:*]`,
        reason: 'The streams of its own log group only: Lambda names a new stream per execution environment.',
      },
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) supports no resource-level permissions.' +
          (props.extraWildcardReason ? ` ${props.extraWildcardReason}` : ''),
      },
    );
  }
}

/** Refuses settings Lambda would refuse at deploy time, at synth instead, naming the function. */
export function checkSettings(id: string, settings: FunctionSettings): void {
  const memory = settings.memorySize;
  if (memory !== undefined && !(Number.isInteger(memory) && memory >= 128 && memory <= 10240)) {
    throw new Error(`${id}: memorySize ${memory}: use whole MB from 128 to 10240`);
  }
  const timeout = settings.timeout?.toSeconds();
  if (timeout !== undefined && !(timeout >= 1 && timeout <= 900)) {
    throw new Error(`${id}: timeout ${timeout} s: use 1 to 900 seconds`);
  }
  const reserved = settings.reservedConcurrency;
  if (reserved !== undefined && !(Number.isInteger(reserved) && reserved >= 1)) {
    throw new Error(`${id}: reservedConcurrency ${reserved}: use a whole number of at least 1 (0 would stop the function)`);
  }
}

// The service's HTTP APIs: the main API (commands, state, events, views) and the admin API (subject
// export and forget) on an API of its own, so that no grant on the main API (`execute-api:Invoke` on
// `*` of it, a JWT without the admin scope) ever reaches an admin route. Each route requires its scope
// (JWT) or its own invoke grant (IAM: `grantRead`, `grantWrite`, `grantAdmin` emit exact route ARNs).
import type { RemovalPolicy } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/**
 * The OAuth scopes the routes require under JWT auth (defaults `strata/read`, `strata/write`,
 * `strata/admin`). `false` requires none for that kind of route (a token that carries no scopes, such
 * as an ID token, for an upgrade from a version without scopes); the admin scope is always required.
 */
export interface ApiScopes {
  /** State, events and views (GET routes of the main API). */
  readonly read?: string | false;
  /** Commands (POST routes). */
  readonly write?: string | false;
  /** Subject export and forget (the admin API). */
  readonly admin?: string;
}

/** How callers of the HTTP APIs authenticate. */
export type ApiAuth =
  | {
      /** AWS SigV4 (IAM): grant callers `grantRead`, `grantWrite`, `grantAdmin` (exact route ARNs). */
      readonly iam: true;
    }
  | {
      /** A JWT issuer (Cognito user pool, Auth0, ...): tokens are verified by API Gateway. */
      readonly jwt: {
        readonly issuer: string;
        readonly audience: readonly string[];
        /** The scope each kind of route requires. */
        readonly scopes?: ApiScopes;
        /** @deprecated use `scopes.admin`. */
        readonly adminScope?: string;
      };
    };

/** Throttling of an API stage or a route (API Gateway's token bucket). */
export interface ApiThrottle {
  /** Requests per second, steady. */
  readonly rateLimit: number;
  /** Requests at once, in a burst. */
  readonly burstLimit: number;
}

/** The throttles of the service's routes (defaults in parentheses). */
export interface ApiThrottles {
  /** Every route of the main API without one of its own (100 per second, bursts of 200). */
  readonly default?: ApiThrottle;
  /** Each command route (the default's). */
  readonly command?: ApiThrottle;
  /** Each state, events and view route (the default's). */
  readonly query?: ApiThrottle;
  /** Each admin route (1 per second, bursts of 2: export and forget are an operator's, one subject at a time). */
  readonly admin?: ApiThrottle;
}

/** The scope of each kind of route under JWT auth (defaults `strata/read`, `strata/write`, `strata/admin`); undefined under IAM. */
export function apiScopes(auth: ApiAuth): { read: string | false; write: string | false; admin: string } | undefined {
  if ('iam' in auth) return undefined;
  const given = auth.jwt.scopes ?? {};
  return {
    read: given.read ?? 'strata/read',
    write: given.write ?? 'strata/write',
    admin: given.admin ?? auth.jwt.adminScope ?? 'strata/admin',
  };
}

/** The kinds of route, each with its scope and grant. */
export type RouteKind = 'read' | 'write' | 'admin';

/** The default route throttles. */
export const DEFAULT_THROTTLES = {
  default: { rateLimit: 100, burstLimit: 200 },
  admin: { rateLimit: 1, burstLimit: 2 },
} as const;

/** Properties of {@link ServiceApis}. */
export interface ServiceApisProps {
  readonly eventSource: string;
  readonly auth: ApiAuth;
  readonly throttles: ApiThrottles;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  /** With an admin function: the admin API. */
  readonly admin: boolean;
}

/** One route: its method, path and kind. */
export interface ServiceRoute {
  readonly method: apigw.HttpMethod;
  readonly path: string;
  readonly kind: RouteKind;
}

/** The main and admin HTTP APIs of a service, their routes, and the grants on them. */
export class ServiceApis extends Construct {
  /** Commands, state, events, views. */
  readonly api: apigw.HttpApi;
  /** Subject export and forget, when the service has an admin function. */
  readonly adminApi?: apigw.HttpApi;
  /** Every route, in the order added. */
  readonly routes: ServiceRoute[] = [];
  private readonly props: ServiceApisProps;
  private readonly integrations = new Map<string, HttpLambdaIntegration>();
  private readonly authorizers: Record<'main' | 'admin', apigw.IHttpRouteAuthorizer>;
  private readonly stages: Record<'main' | 'admin', apigw.HttpStage | undefined>;

  constructor(scope: Construct, id: string, props: ServiceApisProps) {
    super(scope, id);
    this.props = props;
    checkThrottles(props.throttles);
    // The ids `Api` and `AccessLogs` of the main API are those the service had before the admin API
    // moved out, so an update keeps its URL.
    const { api, stage } = this.httpApi(scope, 'Api', 'ApiAccessLogs', `HTTP API of ${props.eventSource}`, props.throttles.default ?? DEFAULT_THROTTLES.default);
    this.api = api;
    let adminStage: apigw.HttpStage | undefined;
    if (props.admin) {
      const made = this.httpApi(this, 'Admin', 'AdminAccessLogs', `Admin API of ${props.eventSource} (subject export and forget)`, props.throttles.admin ?? DEFAULT_THROTTLES.admin);
      this.adminApi = made.api;
      adminStage = made.stage;
    }
    this.stages = { main: stage, admin: adminStage };
    const auth = props.auth;
    if ('iam' in auth) {
      this.authorizers = { main: new HttpIamAuthorizer(), admin: new HttpIamAuthorizer() };
    } else {
      const make = (name: string) => new HttpJwtAuthorizer(name, auth.jwt.issuer, { jwtAudience: [...auth.jwt.audience] });
      this.authorizers = { main: make('Jwt'), admin: make('AdminJwt') };
    }
  }

  /** The scope a kind of route requires under JWT auth (undefined under IAM). */
  scope(kind: RouteKind): string | undefined {
    return apiScopes(this.props.auth)?.[kind] || undefined;
  }

  /**
   * A route to a function (`name`: its construct id), admin routes on the admin API, with its
   * authorizer, scope and throttle.
   */
  route(path: string, method: apigw.HttpMethod, kind: RouteKind, target: lambda.IFunction, name: string): void {
    const which = kind === 'admin' ? 'admin' : 'main';
    const api = which === 'admin' ? this.adminApi : this.api;
    if (!api) throw new Error(`${method} ${path}: the service has no admin API (admin: false)`);
    const scope = this.scope(kind);
    const added = api.addRoutes({
      path,
      methods: [method],
      integration: this.integration(which, target, name),
      authorizer: this.authorizers[which],
      authorizationScopes: scope ? [scope] : undefined,
    });
    this.routes.push({ method, path, kind });
    const throttle = kind === 'write' ? this.props.throttles.command : kind === 'read' ? this.props.throttles.query : undefined;
    const stage = this.stages.main;
    if (throttle && stage) {
      // A stage's route settings name routes by key: CloudFormation refuses them until the route
      // exists, and nothing else orders the stage after its routes.
      for (const r of added) stage.node.addDependency(r);
      const cfn = stage.node.defaultChild as apigw.CfnStage;
      cfn.routeSettings = {
        ...((cfn.routeSettings as Record<string, unknown> | undefined) ?? {}),
        // RouteSettings is untyped JSON in CloudFormation's own casing.
        [`${method} ${path}`]: { ThrottlingRateLimit: throttle.rateLimit, ThrottlingBurstLimit: throttle.burstLimit },
      };
    }
  }

  /** `execute-api:Invoke` on exactly the read routes (GET of state, events, views). IAM auth only. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return this.grant(grantee, 'read');
  }

  /** `execute-api:Invoke` on exactly the command routes. IAM auth only. */
  grantWrite(grantee: iam.IGrantable): iam.Grant {
    return this.grant(grantee, 'write');
  }

  /** `execute-api:Invoke` on exactly the admin routes (subject export and forget). IAM auth only. */
  grantAdmin(grantee: iam.IGrantable): iam.Grant {
    return this.grant(grantee, 'admin');
  }

  /** The ARNs `execute-api:Invoke` of a kind of route needs: one per route, path parameters as `*`. */
  routeArns(kind: RouteKind): string[] {
    const api = kind === 'admin' ? this.adminApi : this.api;
    if (!api) return [];
    const arns = this.routes
      .filter((r) => r.kind === kind)
      .map((r) => api.arnForExecuteApi(r.method, r.path.replace(/\{[^}]+\}/g, '*'), '$default'));
    return [...new Set(arns)];
  }

  private grant(grantee: iam.IGrantable, kind: RouteKind): iam.Grant {
    if (!('iam' in this.props.auth)) {
      throw new Error(`grant${kind[0].toUpperCase()}${kind.slice(1)}: the API uses JWT auth; a caller needs the scope ${this.scope(kind)} in its token instead`);
    }
    const arns = this.routeArns(kind);
    if (arns.length === 0) throw new Error(`grant: the service has no ${kind} route`);
    return iam.Grant.addToPrincipal({ grantee, actions: ['execute-api:Invoke'], resourceArns: arns });
  }

  // One invoke permission per function and API, not one per route: a function's resource policy
  // stops at 20 KB, which a service of a few dozen routes would pass.
  private integration(which: 'main' | 'admin', target: lambda.IFunction, name: string): HttpLambdaIntegration {
    const key = `${which}:${target.node.path}`;
    let found = this.integrations.get(key);
    if (!found) {
      found = new HttpLambdaIntegration(`${name}Integration`, target, { scopePermissionToRoute: false });
      this.integrations.set(key, found);
    }
    return found;
  }

  private httpApi(
    scope: Construct,
    id: string,
    logsId: string,
    description: string,
    throttle: ApiThrottle,
  ): { api: apigw.HttpApi; stage: apigw.HttpStage } {
    const api = new apigw.HttpApi(scope, id, { description, createDefaultStage: false });
    const accessLogs = new logs.LogGroup(scope, logsId, {
      retention: this.props.logRetention,
      removalPolicy: this.props.removalPolicy,
    });
    const stage = api.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      throttle,
      accessLogSettings: { destination: new apigw.LogGroupLogDestination(accessLogs), format: ACCESS_LOG_FORMAT },
    });
    return { api, stage };
  }
}

/**
 * One JSON object per request: who called (the IAM caller's ARN, or the JWT's subject), which route,
 * the answer's status and how long it took (API Gateway's `$context` variables).
 */
export const ACCESS_LOG_FORMAT = AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    time: '$context.requestTime',
    route: '$context.routeKey',
    path: '$context.path',
    status: '$context.status',
    latencyMs: '$context.responseLatency',
    integrationLatencyMs: '$context.integrationLatency',
    caller: '$context.identity.userArn',
    subject: '$context.authorizer.claims.sub',
    sourceIp: '$context.identity.sourceIp',
    integrationError: '$context.integrationErrorMessage',
  }),
);

function checkThrottles(throttles: ApiThrottles): void {
  for (const [kind, t] of Object.entries(throttles)) {
    if (t && !(t.rateLimit > 0 && Number.isInteger(t.burstLimit) && t.burstLimit > 0)) {
      throw new Error(`throttles.${kind} ${JSON.stringify(t)}: rateLimit above 0 and a whole burstLimit above 0`);
    }
  }
}

// The CDK app: `npx cdk synth` / `npx cdk deploy` (from infra/). Context (`-c key=value`):
//   strata:code=placeholder      synthesize without the function zips (tests, lint, emulator)
//   strata:tenant=acme           the fixed tenant (default demo)
//   strata:jwtIssuer=https://... with strata:jwtAudience=a,b: JWT auth, tenant from a claim
//   strata:tenantClaim=tenant    the claim naming the tenant (default tenant; set by the issuer, see README)
//   strata:tenantIsolation=true  confine table and key access to the fixed tenant
//   strata:retainData=false      delete table and keys with the stack (throwaway environments)
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { functionsFromZips, placeholderCode } from '../lib/function-code';
import { EXAMPLE_EVENT_SOURCE, StrataStack, type StrataStackProps } from '../lib/strata-stack';

const app = new App(); // the CLI passes cdk.json's context
const context = (key: string): string | undefined => app.node.tryGetContext(`strata:${key}`);
const issuer = context('jwtIssuer');
const audience = (context('jwtAudience') ?? '').split(',').filter(Boolean);
if (issuer && audience.length === 0) {
  throw new Error('strata:jwtIssuer needs strata:jwtAudience (comma-separated client ids or audiences)');
}
const props: StrataStackProps = {
  code: context('code') === 'placeholder' ? placeholderCode() : functionsFromZips(),
  eventSource: context('eventSource') ?? EXAMPLE_EVENT_SOURCE,
  tenancy: issuer ? { claim: context('tenantClaim') ?? 'tenant' } : { fixed: context('tenant') ?? 'demo' },
  auth: issuer ? { jwt: { issuer, audience } } : { iam: true },
  tenantIsolation: context('tenantIsolation') === 'true',
  retainData: context('retainData') !== 'false',
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
};
new StrataStack(app, 'Strata', props);
// cdk-nag: synth fails on any unacknowledged AwsSolutions error (acknowledgments, each with its
// reason, are next to the resources they concern).
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));

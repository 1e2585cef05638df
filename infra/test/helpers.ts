// Shared by the infra tests: the example stack synthesized with placeholder code.
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { placeholderCode } from '../lib/function-code';
import { cdkContext, EXAMPLE_EVENT_SOURCE, StrataStack, type StrataStackProps } from '../lib/strata-stack';

/** A fresh app + example stack (placeholder code) and its template. */
export function example(props: Partial<StrataStackProps> = {}): { app: App; stack: StrataStack; template: Template } {
  const app = new App({ context: cdkContext() });
  const stack = new StrataStack(app, 'Strata', { code: placeholderCode(), eventSource: EXAMPLE_EVENT_SOURCE, ...props });
  return { app, stack, template: Template.fromStack(stack) };
}

type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, Record<string, unknown>>; Sid?: string };

/** Every statement of the inline policies attached to the role of the function with this construct id. */
export function statementsOf(template: Template, functionId: string): Statement[] {
  const roles = template.findResources('AWS::IAM::Role');
  const roleId = Object.keys(roles).find((id) => id.startsWith(`Orders${functionId}Role`));
  if (!roleId) throw new Error(`no role for ${functionId}`);
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

/** Every action the statements allow. */
export function actionsOf(statements: Statement[]): string[] {
  return statements.flatMap((s) => ([] as string[]).concat(s.Action)).sort();
}

/** The logical id of the only resource of a type whose id starts with a prefix. */
export function logicalId(template: Template, type: string, prefix: string): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`${ids.length} ${type} starting with ${prefix}`);
  return ids[0];
}

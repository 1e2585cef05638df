// The emulator runs what gets deployed: this derives, from the synthesized stack template, the template
// of the resources a local AWS emulator can run (table, keys, bus, archive, rule, queues) and provisions
// them through the emulator's CloudFormation. Functions, roles, the HTTP API and alarms stay out: the
// emulator cannot run Rust Lambda code (the tests and the demo serve the functions with
// `cargo lambda watch` instead) and does not enforce IAM.
//
// Changes, all for moto's CloudFormation (5.2.5): a KMS key policy and an archive's event pattern become
// JSON strings (moto's later KMS calls fail on a policy given as an object; its archive handler fails on
// a pattern given as one, as CloudFormation allows); an archive gets a name of its own ("archive-" + the stack's
// UUID), because moto names it `{stack}-{logical id}-{random}`, past EventBridge's 48 characters (AWS
// generates a short one); a `Ref` to an event bus becomes the bus's name (moto's Ref yields its internal
// object, not the name); a key policy's statements that name a role go (no roles in the emulator,
// which enforces no key policy); and the CDK bootstrap version check goes (no bootstrap in an emulator).

/** The resource types the emulator provisions. */
export const EMULATED_TYPES: readonly string[] = [
  'AWS::DynamoDB::Table',
  'AWS::KMS::Key',
  'AWS::Events::EventBus',
  'AWS::Events::Archive',
  'AWS::Events::Rule',
  'AWS::SQS::Queue',
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Template = { [key: string]: Json } & { Resources: Record<string, { [key: string]: Json }> };

/** The emulator's part of a synthesized template. Fails if a kept resource needs a dropped one. */
export function emulatorTemplate(template: Template): Template {
  const kept = Object.fromEntries(
    Object.entries(template.Resources).filter(([, r]) => EMULATED_TYPES.includes(r.Type as string)),
  );
  const resources: Record<string, { [key: string]: Json }> = {};
  for (const [id, resource] of Object.entries(kept)) {
    const copy = structuredClone(resource);
    if (copy.Type === 'AWS::KMS::Key') {
      // A key policy names the roles that may use the key; the emulator has no roles (and enforces no
      // key policy), so statements naming one go and the rest stay.
      const policy = (copy.Properties as { [key: string]: Json }).KeyPolicy as { Statement?: Json[] } | undefined;
      if (policy?.Statement) policy.Statement = policy.Statement.filter((st) => references(st).every((r) => r in kept));
    }
    for (const ref of references(copy.Properties ?? null)) {
      if (!(ref in kept)) throw new Error(`${id} (${String(resource.Type)}) refers to ${ref}, which the emulator does not run`);
    }
    if (copy.DependsOn !== undefined) {
      const deps = ([] as Json[]).concat(copy.DependsOn).filter((d) => typeof d === 'string' && d in kept);
      if (deps.length > 0) copy.DependsOn = deps;
      else delete copy.DependsOn;
    }
    if (copy.Type === 'AWS::Events::Archive') {
      const props = copy.Properties as { [key: string]: Json };
      if (props.EventPattern !== undefined) props.EventPattern = jsonString(props.EventPattern);
      props.ArchiveName ??= {
        'Fn::Join': ['-', ['archive', { 'Fn::Select': [2, { 'Fn::Split': ['/', { Ref: 'AWS::StackId' }] }] }]],
      };
    }
    if (copy.Type === 'AWS::KMS::Key') {
      const props = copy.Properties as { [key: string]: Json };
      props.KeyPolicy = jsonString(props.KeyPolicy);
    }
    resources[id] = copy;
  }
  const busNames = Object.fromEntries(
    Object.entries(kept)
      .filter(([, r]) => r.Type === 'AWS::Events::EventBus')
      .map(([id, r]) => [id, (r.Properties as { [key: string]: Json }).Name]),
  );
  for (const resource of Object.values(resources)) {
    resource.Properties = replaceRefs(resource.Properties ?? null, busNames);
  }
  const outputs: Record<string, Json> = Object.fromEntries(
    Object.entries((template.Outputs ?? {}) as Record<string, Json>)
      .filter(([, o]) => references(o).every((r) => r in kept))
      .map(([id, o]) => [id, replaceRefs(o, busNames)]),
  );
  // Each function's environment as deployed (JSON text resolved by the emulator's CloudFormation),
  // named after its part (`EnvCommand`, `EnvConsumerTransferProcess`): a test starts the service's
  // binary with exactly what the construct gives each function.
  for (const resource of Object.values(template.Resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const variables = ((resource.Properties as { [key: string]: Json }).Environment as { Variables?: Json } | undefined)?.Variables;
    if (!variables || typeof variables !== 'object' || Array.isArray(variables)) continue;
    const role = variables.STRATA_ROLE;
    if (typeof role !== 'string' || !references(variables).every((r) => r in kept)) continue;
    const consumer = typeof variables.STRATA_CONSUMER === 'string' ? `-${variables.STRATA_CONSUMER}` : '';
    const name = `Env${`${role}${consumer}`.split(/[^A-Za-z0-9]+/).filter(Boolean).map((p) => p[0].toUpperCase() + p.slice(1)).join('')}`;
    if (name in outputs) throw new Error(`two functions would share the output ${name}: give each its own STRATA_ROLE (and STRATA_CONSUMER)`);
    outputs[name] = { Value: jsonString(replaceRefs(variables, busNames)) };
  }
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description:
      'Generated by infra/lib/emulator.ts from the synthesized Strata stack: the resources a local AWS emulator runs. Do not edit.',
    Resources: resources,
    Outputs: outputs,
  };
}

/** `value` with every `{ Ref: id }` of an id in `names` replaced by that name. */
function replaceRefs(value: Json, names: Record<string, Json>): Json {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => replaceRefs(v, names));
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === 'Ref' && typeof value.Ref === 'string' && value.Ref in names) {
    return structuredClone(names[value.Ref]);
  }
  return Object.fromEntries(keys.map((k) => [k, replaceRefs(value[k], names)]));
}

/**
 * An intrinsic with every string inside it escaped for a place inside a JSON string: the literal
 * parts of `Fn::Join` (and its delimiter), `Fn::Sub`'s template (`${...}` needs no escaping), and the
 * arguments of `Fn::If`, `Fn::Select` and the rest, at any depth. Logical ids, attribute names and
 * condition names hold nothing JSON escapes, so escaping them changes nothing.
 */
function escapedIntrinsic(value: Json): Json {
  if (typeof value === 'string') return JSON.stringify(value).slice(1, -1);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(escapedIntrinsic);
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, escapedIntrinsic(inner)]));
}

/** Logical ids a JSON value refers to (Ref, Fn::GetAtt, Fn::Sub's ${Id}). */
function references(value: Json): string[] {
  if (value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap(references);
  const found: string[] = [];
  for (const [key, inner] of Object.entries(value)) {
    if (key === 'Ref' && typeof inner === 'string' && !inner.startsWith('AWS::')) found.push(inner);
    else if (key === 'Fn::GetAtt' && Array.isArray(inner) && typeof inner[0] === 'string') found.push(inner[0]);
    else if (key === 'Fn::GetAtt' && typeof inner === 'string') found.push(inner.split('.')[0]);
    else if (key === 'Fn::Sub') {
      const [text, vars] = Array.isArray(inner) ? [inner[0], inner[1]] : [inner, null];
      const local = vars !== null && typeof vars === 'object' && !Array.isArray(vars) ? Object.keys(vars) : [];
      if (typeof text === 'string') {
        for (const m of text.matchAll(/\$\{([A-Za-z0-9]+)(\.[A-Za-z.]+)?\}/g)) {
          if (!local.includes(m[1])) found.push(m[1]);
        }
      }
      found.push(...references(vars ?? null));
    } else found.push(...references(inner));
  }
  return found;
}

/**
 * A JSON value with intrinsic functions inside, as one `Fn::Join` that CloudFormation resolves to its
 * JSON text. An intrinsic is placed inside quotes with its own strings escaped (a token inside a
 * longer string, such as JSON text of its own, see `escapedIntrinsic`); what a `Ref` or `Fn::GetAtt`
 * resolves to must hold no `"` or `\\` (ARNs, names and ids do not). A value that is already a
 * string is returned as it is.
 */
function jsonString(value: Json): Json {
  if (typeof value === 'string') return value;
  const parts: Json[] = [];
  const literal = (text: string) => {
    const last = parts[parts.length - 1];
    if (typeof last === 'string') parts[parts.length - 1] = last + text;
    else parts.push(text);
  };
  const walk = (v: Json): void => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'))) {
        literal('"');
        parts.push(escapedIntrinsic(v));
        literal('"');
        return;
      }
      literal('{');
      keys.forEach((k, i) => {
        literal(`${i ? ',' : ''}${JSON.stringify(k)}:`);
        walk(v[k]);
      });
      literal('}');
    } else if (Array.isArray(v)) {
      literal('[');
      v.forEach((item, i) => {
        if (i) literal(',');
        walk(item);
      });
      literal(']');
    } else literal(JSON.stringify(v));
  };
  walk(value);
  return parts.length === 1 ? parts[0] : { 'Fn::Join': ['', parts] };
}

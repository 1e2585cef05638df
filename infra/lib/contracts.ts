// Event contracts in an EventBridge schema registry: one schema per detail-type (named
// `{source}@{detail-type}`, as EventBridge's discovery names them), each the whole event around the
// detail's JSON Schema that the Rust side generates (`Service::event_document`, committed beside the
// OpenAPI documents: `functions/stream-publisher/events.schema.json` for the example).
import * as fs from 'node:fs';
import * as eventschemas from 'aws-cdk-lib/aws-eventschemas';
import { Construct } from 'constructs';

/** A service's event document: `{"events": {detail-type: draft-04 schema of the detail}}`. */
export interface EventDocument {
  readonly events: Record<string, Record<string, unknown>>;
}

/** Reads an event document (`events.schema.json`), failing at synth with the reason. */
export function loadEventDocument(file: string): EventDocument {
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<EventDocument>;
  if (!parsed.events || typeof parsed.events !== 'object' || Object.keys(parsed.events).length === 0) {
    throw new Error(`${file}: no "events": write it with Service::event_document`);
  }
  return parsed as EventDocument;
}

/** Properties of {@link EventContracts}. */
export interface EventContractsProps {
  /** The events' `source`. */
  readonly eventSource: string;
  /** The service's event document. */
  readonly document: EventDocument;
  /** What the registry is for (its description). */
  readonly description: string;
}

/** A schema registry with every published event's schema. */
export class EventContracts extends Construct {
  /** The registry. */
  readonly registry: eventschemas.CfnRegistry;
  /** The schemas, by detail-type. */
  readonly schemas: Record<string, eventschemas.CfnSchema> = {};

  constructor(scope: Construct, id: string, props: EventContractsProps) {
    super(scope, id);
    this.registry = new eventschemas.CfnRegistry(this, 'Registry', { description: props.description });
    for (const [detailType, detail] of Object.entries(props.document.events)) {
      const { definitions, $schema: _, ...rest } = detail as { definitions?: Record<string, unknown>; $schema?: string };
      const event = {
        $schema: 'http://json-schema.org/draft-04/schema#',
        title: detailType,
        type: 'object',
        required: ['source', 'detail-type', 'detail'],
        properties: {
          source: { enum: [props.eventSource] },
          'detail-type': { enum: [detailType] },
          detail: { $ref: '#/definitions/StrataDetail' },
        },
        // A name no derived type takes (utoipa names definitions after Rust types).
        definitions: { ...(definitions ?? {}), StrataDetail: rest },
      };
      this.schemas[detailType] = new eventschemas.CfnSchema(this, `Schema${detailType.replace(/[^A-Za-z0-9]/g, '')}`, {
        registryName: this.registry.attrRegistryName,
        schemaName: `${props.eventSource}@${detailType}`,
        type: 'JSONSchemaDraft4',
        content: JSON.stringify(event),
        description: `The ${detailType} event of ${props.eventSource}`,
      });
    }
  }
}

// strata-cdk: the CDK constructs of Strata, for a team's own CDK app.
export { TableAccess, grantFieldKey, grantTableKey, type PartitionClassName } from './access';
export { ServiceConsumer, type ConsumerProps } from './consumer';
export { EventContracts, loadEventDocument, type EventContractsProps, type EventDocument } from './contracts';
export { EMULATED_TYPES, emulatorTemplate } from './emulator';
export {
  EventSourcedService,
  SERVICE_OUTPUTS,
  type EventSourcedServiceProps,
  type ProjectorSettings,
  type PublisherSettings,
  type ServiceFunctionSettings,
  type Tenancy,
} from './event-sourced-service';
export {
  FUNCTION_ROLES,
  functionsFromZips,
  placeholderCode,
  serviceCode,
  serviceFromZip,
  type FunctionCode,
  type FunctionRole,
} from './function-code';
export { StrataFunction, type FunctionSettings, type StrataFunctionProps } from './strata-function';
export { CATEGORY_PATTERN, NAME_PATTERN, RESERVED_CATEGORIES, type QueueSettings } from './wiring';
export { EventStoreTable, loadTableSpec, type TableSpec } from './table-spec';
export { cdkContext, synthesize, synthesizeEmulatorTemplate } from './outputs';
export {
  ACCESS_LOG_FORMAT,
  DEFAULT_THROTTLES,
  ServiceApis,
  type ApiAuth,
  type ApiScopes,
  type ApiThrottle,
  type ApiThrottles,
  type RouteKind,
  type ServiceRoute,
} from './http-api';
export { KEY_ADMIN_ACTIONS, KEY_GUARDED_ACTIONS, type ServiceSecurityProps } from './security';

// Type declarations for synthesis-client, the JavaScript client of the Synthesis API.

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export type ExecutionStatus = 'created' | 'running' | 'paused' | 'completed' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'completed' | 'failed' | 'skipped' | 'cancelled';
export type EventType =
  | 'execution_created'
  | 'execution_started'
  | 'execution_paused'
  | 'execution_resumed'
  | 'execution_completed'
  | 'step_started'
  | 'step_output'
  | 'step_completed'
  | 'plan_created'
  | 'plan_updated'
  | 'plan_deleted'
  | 'invocation_completed'
  | 'notification';

/** A timestamp: an ISO 8601 string, or a Date (sent as ISO 8601 UTC). */
export type Time = string | Date;

export interface Metadata {
  tags?: string[];
  created_by?: string;
  [key: string]: unknown;
}

export interface RetryPolicy {
  max_attempts?: number;
  backoff_seconds?: number;
  backoff_multiplier?: number;
}

export interface Step {
  id: string;
  type: string;
  parameters?: Record<string, unknown>;
  depends_on?: string[];
  condition?: string;
  timeout?: number;
  retry?: RetryPolicy;
  continue_on_failure?: boolean;
  [key: string]: unknown;
}

export interface Plan {
  name: string;
  description?: string;
  steps: Step[];
  variables?: Record<string, unknown>;
  /** Variables shown as `***` wherever they would show; steps still get their values. */
  secret_variables?: string[];
  metadata?: Metadata;
}

export interface ErrorDetail {
  field: string;
  message: string;
}

export interface ErrorBody {
  error: { code: string; message: string; details?: ErrorDetail[] };
}

export interface SynthesisErrorOptions {
  status?: number | null;
  code?: string;
  details?: ErrorDetail[];
  body?: unknown;
  cause?: unknown;
}

/**
 * Every failure the client reports. `code` is the API's error code (`validation_error`,
 * `unauthenticated`, `permission_denied`, `not_found`, `method_not_allowed`,
 * `invalid_state`, `already_exists`, `payload_too_large`, `uri_too_long`,
 * `integration_error`, `internal_error`), or one of the client's own: `unavailable` (the server cannot be
 * reached, or a socket dropped), `timeout` (a wait ran out of time), `closed` (the client
 * was closed during a wait), `http_error` (an error response not in the API's format).
 */
export class SynthesisError extends Error {
  constructor(message: string, options?: SynthesisErrorOptions);
  name: 'SynthesisError';
  /** The HTTP status, or null when no response came (network failures, timeouts). */
  status: number | null;
  code: string;
  /** One `{field, message}` per problem (validation errors); empty otherwise. */
  details: ErrorDetail[];
  /** The response body, when there was one. */
  body?: unknown;
}

// ---- responses ----

export interface Page {
  total: number;
  offset: number;
  limit: number;
}

export interface StepView {
  id: string;
  type: string;
  status: StepStatus;
  started_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
  output: string | null;
  error: string | null;
  exit_code?: number | null;
  attempts?: number;
  parameters?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ExecutionCreated {
  execution_id: string;
  status: ExecutionStatus;
  created_at: string;
  started_at?: string | null;
  plan: Plan;
  [key: string]: unknown;
}

export interface ExecutionSummary {
  execution_id: string;
  name: string;
  status: ExecutionStatus;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  created_by: string | null;
  tags: string[];
  /** The node running it now; null when none. */
  node_id: string | null;
  [key: string]: unknown;
}

export interface Execution {
  execution_id: string;
  status: ExecutionStatus;
  plan_id: string | null;
  created_at: string;
  started_at: string | null;
  paused_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
  error: string | null;
  plan: Plan;
  steps: StepView[];
  variables: Record<string, unknown>;
  metadata: Metadata;
  /** The node running it now; null when none. */
  node_id: string | null;
  [key: string]: unknown;
}

export interface ExecutionAction {
  execution_id: string;
  status: ExecutionStatus;
  [key: string]: unknown;
}

export interface ExecutionList extends Page {
  executions: ExecutionSummary[];
}

export interface ExecutionSteps {
  execution_id: string;
  steps: StepView[];
}

export interface ExecutionVariables {
  execution_id: string;
  variables: Record<string, unknown>;
}

export interface StoredPlan {
  plan_id: string;
  name: string;
  description: string | null;
  created_at: string;
  updated_at: string | null;
  steps: Step[];
  variables: Record<string, unknown>;
  metadata: Metadata;
  [key: string]: unknown;
}

export interface PlanSummary {
  plan_id: string;
  name: string;
  description: string | null;
  created_at: string;
  updated_at: string | null;
  created_by: string | null;
  tags: string[];
  [key: string]: unknown;
}

export interface PlanList extends Page {
  plans: PlanSummary[];
}

export interface PlanExecution {
  execution_id: string;
  status: ExecutionStatus;
  created_at: string;
  started_at: string | null;
  plan_id: string;
  [key: string]: unknown;
}

export interface Success {
  success: boolean;
  message: string;
}

export interface ParameterSchema {
  type: string;
  description?: string;
  required?: boolean;
  default?: unknown;
  [key: string]: unknown;
}

export interface IntegrationSummary {
  id: string;
  name: string;
  description: string;
  capabilities: string[];
  /** False when the operator turned it off (`--integrations`). */
  enabled: boolean;
}

export interface Integration extends IntegrationSummary {
  parameters: Record<string, Record<string, ParameterSchema>>;
}

export interface Capability {
  id: string;
  name: string;
  description: string;
  parameters: Record<string, ParameterSchema>;
}

export interface IntegrationCapabilities {
  integration_id: string;
  capabilities: Capability[];
}

export interface Invocation {
  invocation_id: string;
  integration_id: string;
  capability_id: string;
  status: string;
  started_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
  parameters?: Record<string, unknown>;
  output: unknown;
  error: string | null;
  [key: string]: unknown;
}

/** A stored event, as `GET /api/events` and `/ws/events` show it. */
export interface EventRecord {
  event_id: string;
  type: EventType;
  timestamp: string;
  execution_id: string | null;
  payload: Record<string, unknown>;
}

export interface EventList extends Page {
  events: EventRecord[];
}

/** A message of `/ws/executions/{id}`. */
export interface ExecutionMessage {
  type: EventType;
  timestamp: string;
  data: Record<string, unknown>;
}

export interface SubscriptionRequest {
  callback_url?: string;
  callbackUrl?: string;
  types?: EventType[];
  filter?: Record<string, unknown>;
  expiration?: string;
  secret?: string;
}

export interface WebhookSubscription {
  subscription_id: string;
  types: EventType[];
  filter: Record<string, unknown>;
  callback_url: string;
  created_at: string;
  expiration: string | null;
  has_secret: boolean;
  /** `paused`: nothing is delivered until it is resumed. */
  status: 'active' | 'paused';
  paused_at: string | null;
  /** By request, or after too many events in a row were not delivered (with the last error). */
  paused_reason: string | null;
}

export interface SubscriptionList {
  subscriptions: WebhookSubscription[];
}

export interface Delivery {
  delivery_id: string;
  subscription_id: string;
  event_id: string;
  event_type: EventType;
  /** `failed`: refused by --deny-private-targets (or the event was pruned); `dead`: its retry window ended (`error` is the last one). */
  status: DeliveryStatus;
  attempts: number;
  status_code: number | null;
  error: string | null;
  /** The first attempt (a redelivery: when it was asked for); the retry window starts here. */
  created_at: string;
  completed_at: string | null;
  next_attempt_at: string | null;
  /** The delivery this one delivers again. */
  redelivery_of: string | null;
}

export type DeliveryStatus = 'pending' | 'retrying' | 'delivered' | 'failed' | 'dead';

export interface DeliveryList extends Page {
  subscription_id: string;
  deliveries: Delivery[];
}

export interface Health {
  status: 'healthy' | 'unhealthy';
  version: string;
  uptime: number;
  components: Record<string, 'healthy' | 'unhealthy'>;
}

/** One server of the cluster on the database (every PostgreSQL server is one). */
export interface ClusterNode {
  node_id: string;
  host: string;
  port: number;
  pid: number;
  started_at: string;
  heartbeat_at: string;
  status: 'alive' | 'dead';
  /** The running executions it owns. */
  executions: number;
}

export interface NodeList {
  nodes: ClusterNode[];
}

export interface Metrics {
  executions: { total: number; active: number; completed: number; failed: number; cancelled: number; [key: string]: number };
  steps: { total: number; succeeded: number; failed: number; [key: string]: number };
  performance: {
    average_execution_time_ms: number;
    average_step_time_ms: number;
    p95_execution_time_ms: number;
    p95_step_time_ms: number;
    [key: string]: number;
  };
  resource_usage: { memory_mb: number; cpu_percent: number; [key: string]: number };
  /** The cluster on this database: nodes alive and dead (listed an hour), and the running
   * executions the node that answered owns. */
  cluster: { nodes_alive: number; nodes_dead: number; node_executions: number; [key: string]: number };
  [key: string]: unknown;
}

// ---- filters (camelCase or snake_case keys; Dates are sent as ISO 8601) ----

export interface ExecutionFilters {
  status?: ExecutionStatus;
  tag?: string;
  createdBy?: string;
  created_by?: string;
  fromDate?: Time;
  from_date?: Time;
  toDate?: Time;
  to_date?: Time;
  limit?: number;
  offset?: number;
}

export interface PlanFilters {
  tag?: string;
  createdBy?: string;
  created_by?: string;
  fromDate?: Time;
  from_date?: Time;
  toDate?: Time;
  to_date?: Time;
  limit?: number;
  offset?: number;
}

export interface EventFilters {
  type?: EventType;
  executionId?: string;
  execution_id?: string;
  fromDate?: Time;
  from_date?: Time;
  toDate?: Time;
  to_date?: Time;
  limit?: number;
  offset?: number;
}

export interface DeliveryFilters {
  status?: string;
  limit?: number;
  offset?: number;
}

// ---- sockets ----

export interface SubscriptionOpenEvent {
  type: 'open';
  target: Subscription<unknown>;
}

export interface SubscriptionMessageEvent {
  type: 'message';
  /** The message's JSON text: `JSON.parse(event.data)`. */
  data: string;
  target: Subscription<unknown>;
}

export interface SubscriptionErrorEvent {
  type: 'error';
  error: SynthesisError;
  message: string;
  target: Subscription<unknown>;
}

export interface SubscriptionCloseEvent {
  type: 'close';
  code: number;
  reason: string;
  wasClean: boolean;
  /** Whether `close()` (the subscription's or the client's) closed it. */
  byClient: boolean;
  target: Subscription<unknown>;
}

export interface SubscriptionEventMap {
  open: SubscriptionOpenEvent;
  message: SubscriptionMessageEvent;
  error: SubscriptionErrorEvent;
  close: SubscriptionCloseEvent;
}

export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

/**
 * A live stream from one of the server's WebSockets, shaped like a browser WebSocket, and
 * an async iterator of its parsed messages (ending when the socket closes normally,
 * throwing a SynthesisError when it closes abnormally: `not_found` for an unknown id,
 * `validation_error` for an unknown event type, `unavailable` otherwise).
 */
export class Subscription<M = unknown> implements AsyncIterable<M> {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;

  /** The socket's URL (without the token). */
  readonly url: string;
  readonly kind: 'execution' | 'events';
  readonly executionId: string | null;
  readonly readyState: 0 | 1 | 2 | 3;
  /** The last error the socket reported, if any. */
  readonly error: SynthesisError | null;
  /** Resolves once the socket has closed, whoever closed it. */
  readonly closed: Promise<CloseInfo>;

  onopen: ((this: Subscription<M>, event: SubscriptionOpenEvent) => void) | null;
  onmessage: ((this: Subscription<M>, event: SubscriptionMessageEvent) => void) | null;
  onerror: ((this: Subscription<M>, event: SubscriptionErrorEvent) => void) | null;
  onclose: ((this: Subscription<M>, event: SubscriptionCloseEvent) => void) | null;

  addEventListener<K extends keyof SubscriptionEventMap>(
    type: K,
    listener: (this: Subscription<M>, event: SubscriptionEventMap[K]) => void,
  ): void;
  removeEventListener<K extends keyof SubscriptionEventMap>(
    type: K,
    listener: (this: Subscription<M>, event: SubscriptionEventMap[K]) => void,
  ): void;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  [Symbol.asyncIterator](): AsyncIterator<M, undefined>;
}

export interface WebSocketLike {
  binaryType?: string;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface ClientOptions {
  /** The bearer token; in Node, `process.env.SYNTHESIS_TOKEN` when not given. */
  token?: string;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
  /** A WebSocket constructor taking a URL (default: the global WebSocket, else the `ws` package). */
  WebSocket?: new (url: string) => WebSocketLike;
  /** Milliseconds between polls when waitForExecution cannot use a socket (default 200). */
  pollInterval?: number;
  /** Extra headers on every HTTP request. */
  headers?: Record<string, string>;
}

export interface WaitOptions {
  /** Milliseconds to wait at most (default: no limit); past it, a SynthesisError with code `timeout`. */
  timeout?: number;
  /** Milliseconds between polls (default: the client's pollInterval). */
  pollInterval?: number;
  /** Whether to listen on the execution's WebSocket (default true); false polls only. */
  websocket?: boolean;
}

export interface RunOptions {
  variables?: Record<string, unknown>;
  /** Variables shown as `***` wherever they would show (besides the plan's own). */
  secretVariables?: string[];
  metadata?: Metadata;
  /**
   * Sent as the Idempotency-Key header: the same call with the same key (within 24 hours)
   * answers the first call's answer and creates nothing more; the same key with another
   * request fails with code `idempotency_key_reused` (409). 1-255 printable ASCII characters.
   */
  idempotencyKey?: string;
}

export interface CreateExecutionOptions extends RunOptions {
  /** Start the execution at once (default: it is only created). */
  start?: boolean;
}

export interface EventStreamOptions {
  types?: EventType[] | string;
  executionId?: string;
  /** An event id: replay every matching event after it, then go live. */
  since?: string;
}

export class SynthesisClient {
  /**
   * @param baseUrl the server's root, default 'http://localhost:8009' (a path prefix is kept)
   */
  constructor(baseUrl?: string, options?: ClientOptions);

  readonly baseUrl: string;
  token: string | undefined;
  pollInterval: number;
  headers: Record<string, string>;

  // Executions
  createExecution(plan: Plan, options?: CreateExecutionOptions): Promise<ExecutionCreated>;
  listExecutions(filters?: ExecutionFilters): Promise<ExecutionList>;
  getExecution(executionId: string, options?: { signal?: AbortSignal }): Promise<Execution>;
  startExecution(executionId: string): Promise<ExecutionAction>;
  pauseExecution(executionId: string): Promise<ExecutionAction>;
  resumeExecution(executionId: string): Promise<ExecutionAction>;
  cancelExecution(executionId: string): Promise<ExecutionAction>;
  getExecutionSteps(executionId: string): Promise<ExecutionSteps>;
  getExecutionStep(executionId: string, stepId: string): Promise<StepView>;
  getExecutionVariables(executionId: string): Promise<ExecutionVariables>;

  // Plans
  createPlan(plan: Plan, options?: { idempotencyKey?: string }): Promise<StoredPlan>;
  listPlans(filters?: PlanFilters): Promise<PlanList>;
  getPlan(planId: string): Promise<StoredPlan>;
  updatePlan(planId: string, plan: Plan): Promise<StoredPlan>;
  deletePlan(planId: string): Promise<Success>;
  /** Creates and starts an execution of a stored plan. */
  executePlanById(planId: string, options?: RunOptions): Promise<PlanExecution>;
  /** Creates and starts an execution of an inline plan; resolves with its execution id. */
  executePlan(plan: Plan, options?: RunOptions): Promise<string>;

  // Integrations
  listIntegrations(): Promise<{ integrations: IntegrationSummary[] }>;
  getIntegration(integrationId: string): Promise<Integration>;
  getIntegrationCapabilities(integrationId: string): Promise<IntegrationCapabilities>;
  /** Runs a capability; with `{async: true}` the server answers at once and getInvocation tells the end. */
  invokeCapability(
    integrationId: string,
    capabilityId: string,
    parameters?: Record<string, unknown>,
    options?: { async?: boolean },
  ): Promise<Invocation>;
  getInvocation(invocationId: string): Promise<Invocation>;

  // Events and webhook subscriptions
  listEvents(filters?: EventFilters): Promise<EventList>;
  getEvent(eventId: string): Promise<EventRecord>;
  createSubscription(subscription: SubscriptionRequest): Promise<WebhookSubscription>;
  listSubscriptions(): Promise<SubscriptionList>;
  getSubscription(subscriptionId: string): Promise<WebhookSubscription>;
  deleteSubscription(subscriptionId: string): Promise<Success>;
  /** Nothing is delivered until it is resumed. */
  pauseSubscription(subscriptionId: string): Promise<WebhookSubscription>;
  /** Delivery goes on from where it stopped. */
  resumeSubscription(subscriptionId: string): Promise<WebhookSubscription>;
  /** The event of a finished delivery again, as a new delivery (`pending`). */
  redeliver(subscriptionId: string, deliveryId: string): Promise<Delivery>;
  listDeliveries(subscriptionId: string, filters?: DeliveryFilters): Promise<DeliveryList>;

  // System
  /** The health report; an unhealthy server's (HTTP 503) is returned, not thrown. */
  health(): Promise<Health>;
  /** The servers of the cluster: the living, and those dead for less than an hour. */
  listNodes(): Promise<NodeList>;
  metrics(options?: { format?: 'json' }): Promise<Metrics>;
  metrics(options: { format: 'prometheus' }): Promise<string>;

  // Live updates
  /** The execution's messages: earlier ones replayed, then live; the server closes it after `execution_completed`. */
  subscribeToExecution(executionId: string): Subscription<ExecutionMessage>;
  /** Event records, live; with `since`, the matching events after that one first. */
  subscribeToEvents(options?: EventStreamOptions): Subscription<EventRecord>;
  /** Resolves with the execution once it is completed, failed or cancelled. */
  waitForExecution(executionId: string, options?: WaitOptions): Promise<Execution>;
  /** Closes every open socket; pending waits reject with code `closed`. The client stays usable. */
  close(): void;
}

export default SynthesisClient;

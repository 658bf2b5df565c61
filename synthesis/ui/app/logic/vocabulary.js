// The API's words the list pages filter by: execution statuses and event types (as in
// clients/js/index.d.ts `ExecutionStatus` and `EventType`). Pure: no browser globals.

/** Every status an execution can have, in the order it usually goes through them. */
export const EXECUTION_STATUSES = Object.freeze(['created', 'running', 'paused', 'completed', 'failed', 'cancelled']);

/** Every event type the server records (docs/events.md). */
export const EVENT_TYPES = Object.freeze([
  'execution_created',
  'execution_started',
  'execution_paused',
  'execution_resumed',
  'execution_completed',
  'step_started',
  'step_output',
  'step_completed',
  'plan_created',
  'plan_updated',
  'plan_deleted',
  'invocation_completed',
  'notification',
]);

/** The events that change an execution's row in the list (created, or a new status). */
export const EXECUTION_EVENT_TYPES = Object.freeze(EVENT_TYPES.filter((type) => type.startsWith('execution_')));

/** The events that change the list of plans. */
export const PLAN_EVENT_TYPES = Object.freeze(EVENT_TYPES.filter((type) => type.startsWith('plan_')));

/** `value` when it is one of `allowed`, else '' (a hand-edited URL must not reach the API). */
export function oneOf(value, allowed) {
  return typeof value === 'string' && allowed.includes(value) ? value : '';
}

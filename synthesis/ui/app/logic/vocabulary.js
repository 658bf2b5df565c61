// The API's words: execution and step statuses, which of them are final, and event types
// (as in clients/js/index.d.ts `ExecutionStatus`, `StepStatus` and `EventType`). Pure: no
// browser globals.

/** The statuses nothing moves on from, an execution's or a step's (an execution is never skipped). */
export const ENDED_STATUSES = Object.freeze(['completed', 'failed', 'cancelled', 'skipped']);

/** Whether `status` (an execution's or a step's) is final. */
export function isEnded(status) {
  return ENDED_STATUSES.includes(status);
}

/** Every status an execution can have, in the order it usually goes through them. */
export const EXECUTION_STATUSES = Object.freeze(['created', 'running', 'paused', ...ENDED_STATUSES.filter((s) => s !== 'skipped')]);

/** Every status a step can have. */
export const STEP_STATUSES = Object.freeze(['pending', 'running', ...ENDED_STATUSES]);

/** Statuses in the order counts show them: what needs a look first, what went well last. */
export const STATUS_ORDER = Object.freeze(['running', 'pending', 'paused', 'failed', 'cancelled', 'skipped', 'completed']);

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

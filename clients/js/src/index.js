// synthesis-client: the JavaScript client of the Synthesis execution engine.
//
// One method per REST endpoint (parsed JSON back), plus executePlan, waitForExecution,
// subscribeToExecution, subscribeToEvents and close. Runs on Node 20+ (global fetch; the
// `ws` package when there is no global WebSocket) and in browsers (fetch, WebSocket).

const DEFAULT_BASE_URL = 'http://localhost:8009';
const DEFAULT_POLL_INTERVAL_MS = 200;
const TERMINAL_STATUSES = new Set(['completed', 'failed', 'cancelled']);

// The contract's error codes by HTTP status, for a refused WebSocket upgrade (whose body a
// WebSocket implementation does not show).
const CODES_BY_STATUS = {
  400: 'validation_error',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  414: 'uri_too_long',
  500: 'internal_error',
  502: 'integration_error',
  503: 'unavailable',
};

// WebSocket close codes the server uses, and what they mean as errors.
const CLOSE_ERRORS = {
  4400: ['validation_error', 400],
  4404: ['not_found', 404],
  1013: ['unavailable', 503],
};

// Messages a subscription keeps for an async iterator that has not started yet.
const BACKLOG_LIMIT = 1000;

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** Every failure the client reports: an API error, a dropped connection, a timeout. */
export class SynthesisError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number|null, code?: string, details?: Array<{field: string, message: string}>, body?: unknown, cause?: unknown}} [options]
   */
  constructor(message, { status = null, code = 'error', details = [], body, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SynthesisError';
    this.status = status;
    this.code = code;
    this.details = details;
    if (body !== undefined) this.body = body;
  }
}

function envToken() {
  const env = typeof process !== 'undefined' && process && process.env ? process.env : {};
  return env.SYNTHESIS_TOKEN || undefined;
}

function snakeCase(key) {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function queryString(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value === undefined || value === null) continue;
    let text;
    if (value instanceof Date) text = value.toISOString();
    else if (Array.isArray(value)) text = value.join(',');
    else text = String(value);
    search.set(snakeCase(key), text);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function snakeKeys(object) {
  const out = {};
  for (const [key, value] of Object.entries(object ?? {})) {
    if (value !== undefined) out[snakeCase(key)] = value;
  }
  return out;
}

function id(value, what) {
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(`${what} must be a non-empty string`);
  }
  return encodeURIComponent(value);
}

function errorFromResponse(status, statusText, body) {
  const error = body && typeof body === 'object' ? body.error : undefined;
  if (error && typeof error === 'object' && typeof error.code === 'string') {
    return new SynthesisError(error.message || `HTTP ${status}`, {
      status,
      code: error.code,
      details: Array.isArray(error.details) ? error.details : [],
      body,
    });
  }
  const text = typeof body === 'string' && body ? `: ${body.slice(0, 200)}` : '';
  return new SynthesisError(`HTTP ${status} ${statusText || ''}`.trim() + text, {
    status,
    code: status >= 500 ? 'internal_error' : 'http_error',
    body,
  });
}

function messageText(data) {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  if (Array.isArray(data)) return data.map(messageText).join('');
  return String(data);
}

function abortable(signal, promise) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function sleep(ms, signal) {
  let timer;
  return abortable(
    signal,
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ).finally(() => clearTimeout(timer));
}

let wsModule;
function loadWs() {
  wsModule ??= import('ws').then((mod) => mod.WebSocket ?? mod.default);
  return wsModule;
}

/**
 * A live stream from one of the server's WebSockets, shaped like a browser WebSocket:
 * `onopen`, `onmessage` (`event.data` is the JSON text), `onerror`, `onclose`,
 * `addEventListener`, `readyState`, `close()`. It is also an async iterator of the parsed
 * messages (those that arrive before iteration starts are kept for it, up to 1000), and
 * `closed` resolves with `{code, reason, wasClean}` once it is closed.
 */
export class Subscription {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSING = CLOSING;
  static CLOSED = CLOSED;

  constructor(client, url, { token, executionId = null, kind = 'events' } = {}) {
    this.url = url;
    this.kind = kind;
    this.executionId = executionId;
    this.readyState = CONNECTING;
    this.error = null;
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this.onclose = null;
    this._listeners = { open: [], message: [], error: [], close: [] };
    this._internal = { open: [], message: [], error: [], close: [] };
    this._closeEvent = null;
    this._socket = null;
    this._probe = null;
    // Until an iterator starts: what it would have missed (null once one has started).
    this._backlog = [];
    this._backlogOverflow = false;
    this._client = client;
    this.closed = new Promise((resolve) => {
      this._resolveClosed = resolve;
    });
    client._sockets.add(this);
    this._connect(token);
  }

  get CONNECTING() {
    return CONNECTING;
  }
  get OPEN() {
    return OPEN;
  }
  get CLOSING() {
    return CLOSING;
  }
  get CLOSED() {
    return CLOSED;
  }

  addEventListener(type, listener) {
    const list = this._listeners[type];
    if (list && typeof listener === 'function' && !list.includes(listener)) list.push(listener);
  }

  removeEventListener(type, listener) {
    const list = this._listeners[type];
    if (list) {
      const at = list.indexOf(listener);
      if (at >= 0) list.splice(at, 1);
    }
  }

  /** The server expects nothing from clients; this exists for WebSocket compatibility. */
  send(data) {
    if (this.readyState !== OPEN) throw new SynthesisError('the socket is not open', { code: 'unavailable' });
    this._socket.send(data);
  }

  close(code = 1000, reason = '') {
    if (this.readyState >= CLOSING) return;
    this.readyState = CLOSING;
    if (this._socket) {
      try {
        this._socket.close(code, reason);
      } catch {
        this._socket.close();
      }
    }
  }

  [Symbol.asyncIterator]() {
    const parse = (data) => {
      try {
        return JSON.parse(data);
      } catch {
        return data;
      }
    };
    const queue = (this._backlog ?? []).map(parse);
    this._backlog = null;
    let waiting = null;
    let ended = false;
    let failure = null;
    if (this._backlogOverflow) {
      // Messages were dropped: the caller learns it after the ones that were kept.
      this._backlogOverflow = false;
      ended = true;
      failure = new SynthesisError(`more than ${BACKLOG_LIMIT} messages arrived before iteration began`, {
        code: 'unavailable',
      });
      this.close();
    } else if (this.readyState === CLOSED) {
      ended = true;
      failure = this._closeError(this._closeEvent);
    }
    const onMessage = (event) => {
      const value = parse(event.data);
      if (waiting) {
        waiting.resolve({ value, done: false });
        waiting = null;
      } else {
        queue.push(value);
      }
    };
    const onClose = (event) => {
      ended = true;
      failure = this._closeError(event);
      detach();
      if (waiting) {
        if (failure) waiting.reject(failure);
        else waiting.resolve({ value: undefined, done: true });
        failure = null;
        waiting = null;
      }
    };
    const detach = () => {
      this._removeInternal('message', onMessage);
      this._removeInternal('close', onClose);
    };
    if (!ended) {
      this._internal.message.push(onMessage);
      this._internal.close.push(onClose);
    }
    const iterator = {
      next: () => {
        if (queue.length) return Promise.resolve({ value: queue.shift(), done: false });
        if (ended) {
          if (failure) {
            const error = failure;
            failure = null;
            return Promise.reject(error);
          }
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => {
          waiting = { resolve, reject };
        });
      },
      return: () => {
        detach();
        this.close();
        ended = true;
        queue.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  // ---- internals ----

  async _connect(token) {
    let Impl;
    let nodeWs;
    try {
      ({ Impl, nodeWs } = await this._client._webSocketImpl());
    } catch (cause) {
      this._fail(
        new SynthesisError('no WebSocket implementation: install the `ws` package', {
          code: 'unavailable',
          cause,
        }),
      );
      return;
    }
    if (this.readyState !== CONNECTING) {
      this._finish({ code: 1000, reason: 'closed before connecting', wasClean: true });
      return;
    }
    let socket;
    try {
      if (nodeWs && token) {
        // Node can send the header, which keeps the token out of URLs and access logs.
        socket = new Impl(this.url, { headers: { Authorization: `Bearer ${token}` } });
      } else {
        const url = new URL(this.url);
        if (token) url.searchParams.set('token', token);
        socket = new Impl(url.toString());
      }
    } catch (cause) {
      this._fail(new SynthesisError(`cannot open ${this.url}: ${cause.message}`, { code: 'unavailable', cause }));
      return;
    }
    this._socket = socket;
    try {
      socket.binaryType = 'arraybuffer';
    } catch {
      // not every implementation lets it be set
    }
    socket.onopen = () => {
      if (this.readyState === CONNECTING) this.readyState = OPEN;
      this._dispatch('open', { type: 'open', target: this });
    };
    socket.onmessage = (event) => {
      if (this.readyState !== OPEN) return; // as in a browser: nothing more once close() is called
      const data = messageText(event.data);
      if (this._backlog) {
        if (this._backlog.length < BACKLOG_LIMIT) this._backlog.push(data);
        else this._backlogOverflow = true;
      }
      this._dispatch('message', { type: 'message', data, target: this });
    };
    socket.onerror = (event) => {
      if (this.readyState >= CLOSING) return; // what closing early makes some implementations say
      const opened = this.readyState === OPEN;
      const cause = event && event.error;
      const text = (event && event.message) || (cause && cause.message) || 'WebSocket error';
      const match = /Unexpected server response: (\d+)/.exec(text);
      const status = match ? Number(match[1]) : null;
      this.error = new SynthesisError(status ? `WebSocket upgrade refused with HTTP ${status}` : text, {
        status,
        code: (status && CODES_BY_STATUS[status]) || 'unavailable',
        cause,
      });
      const report = () => {
        this._dispatch('error', { type: 'error', error: this.error, message: this.error.message, target: this });
        if (!opened) {
          // It never opened, and some implementations (Node 20's experimental WebSocket)
          // then send no close event at all.
          this._finish({ code: 1006, reason: this.error.message, wasClean: false });
          try {
            socket.close();
          } catch {
            // nothing to close
          }
        }
      };
      if (opened || status) {
        report();
        return;
      }
      // A browser's WebSocket does not say why the upgrade failed: ask over HTTP whether
      // the token is the trouble. The close event waits for the answer.
      this._probe = this._client._upgradeRefusal(this.url).then((refusal) => {
        if (refusal) this.error = refusal;
        this._probe = null;
        report();
      });
    };
    socket.onclose = (event) => {
      const info = { code: event.code, reason: messageText(event.reason ?? ''), wasClean: event.wasClean ?? event.code === 1000 };
      if (this._probe) this._probe.then(() => this._finish(info));
      else this._finish(info);
    };
  }

  _fail(error) {
    this.error = error;
    this._dispatch('error', { type: 'error', error, message: error.message, target: this });
    this._finish({ code: 1006, reason: error.message, wasClean: false });
  }

  _finish({ code, reason, wasClean }) {
    if (this.readyState === CLOSED) return;
    const byClient = this.readyState === CLOSING;
    this.readyState = CLOSED;
    this._client._sockets.delete(this);
    const event = { type: 'close', code, reason, wasClean, byClient, target: this };
    this._closeEvent = event;
    this._dispatch('close', event);
    this._resolveClosed({ code, reason, wasClean });
  }

  /** The error an abnormal close means, or null for a normal or client-made close. */
  _closeError(event) {
    if (!event || event.byClient || event.code === 1000 || event.code === 1005) return null;
    const known = CLOSE_ERRORS[event.code];
    if (known) {
      return new SynthesisError(event.reason || `WebSocket closed with code ${event.code}`, {
        code: known[0],
        status: known[1],
      });
    }
    return (
      this.error ??
      new SynthesisError(`WebSocket closed with code ${event.code}${event.reason ? `: ${event.reason}` : ''}`, {
        code: 'unavailable',
      })
    );
  }

  _removeInternal(type, listener) {
    const list = this._internal[type];
    const at = list.indexOf(listener);
    if (at >= 0) list.splice(at, 1);
  }

  _dispatch(type, event) {
    const handler = this[`on${type}`];
    const listeners = [
      ...(typeof handler === 'function' ? [handler] : []),
      ...this._listeners[type],
      ...this._internal[type],
    ];
    for (const listener of listeners) {
      try {
        listener.call(this, event);
      } catch (err) {
        // As a browser does: a throwing handler is reported and the others still run.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/** A client of one Synthesis server. */
export class SynthesisClient {
  /**
   * @param {string} [baseUrl] the server, e.g. 'http://localhost:8009' (a path prefix is kept)
   * @param {{token?: string, fetch?: typeof fetch, WebSocket?: any, pollInterval?: number, headers?: Record<string, string>}} [options]
   */
  constructor(baseUrl = DEFAULT_BASE_URL, { token, fetch, WebSocket, pollInterval, headers } = {}) {
    this.baseUrl = String(baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.token = token ?? envToken();
    this.pollInterval = pollInterval ?? DEFAULT_POLL_INTERVAL_MS;
    this.headers = { ...(headers ?? {}) };
    this._fetch = fetch;
    this._WebSocket = WebSocket;
    this._sockets = new Set();
    this._waits = new Set();
  }

  // ---- Executions ----

  /**
   * With `idempotencyKey`, the same call sent again (after a timeout or a 503, say) answers
   * the first call's answer and creates nothing more.
   */
  async createExecution(plan, { variables, secretVariables, metadata, start, idempotencyKey } = {}) {
    const body = { plan };
    if (variables !== undefined) body.variables = variables;
    if (secretVariables !== undefined) body.secret_variables = secretVariables;
    if (metadata !== undefined) body.metadata = metadata;
    if (start !== undefined) body.start = start;
    return this._request('POST', '/api/executions', { body, idempotencyKey });
  }

  async listExecutions(filters = {}) {
    return this._request('GET', '/api/executions', { query: filters });
  }

  async getExecution(executionId, { signal } = {}) {
    return this._request('GET', `/api/executions/${id(executionId, 'executionId')}`, { signal });
  }

  async startExecution(executionId) {
    return this._request('POST', `/api/executions/${id(executionId, 'executionId')}/start`);
  }

  async pauseExecution(executionId) {
    return this._request('POST', `/api/executions/${id(executionId, 'executionId')}/pause`);
  }

  async resumeExecution(executionId) {
    return this._request('POST', `/api/executions/${id(executionId, 'executionId')}/resume`);
  }

  async cancelExecution(executionId) {
    return this._request('POST', `/api/executions/${id(executionId, 'executionId')}/cancel`);
  }

  async getExecutionSteps(executionId) {
    return this._request('GET', `/api/executions/${id(executionId, 'executionId')}/steps`);
  }

  async getExecutionStep(executionId, stepId) {
    return this._request(
      'GET',
      `/api/executions/${id(executionId, 'executionId')}/steps/${id(stepId, 'stepId')}`,
    );
  }

  async getExecutionVariables(executionId) {
    return this._request('GET', `/api/executions/${id(executionId, 'executionId')}/variables`);
  }

  // ---- Plans ----

  async createPlan(plan, { idempotencyKey } = {}) {
    return this._request('POST', '/api/plans', { body: plan, idempotencyKey });
  }

  async listPlans(filters = {}) {
    return this._request('GET', '/api/plans', { query: filters });
  }

  async getPlan(planId) {
    return this._request('GET', `/api/plans/${id(planId, 'planId')}`);
  }

  async updatePlan(planId, plan) {
    return this._request('PUT', `/api/plans/${id(planId, 'planId')}`, { body: plan });
  }

  async deletePlan(planId) {
    return this._request('DELETE', `/api/plans/${id(planId, 'planId')}`);
  }

  /** Creates and starts an execution of a stored plan; resolves with the server's answer. */
  async executePlanById(planId, { variables, secretVariables, metadata, idempotencyKey } = {}) {
    const body = {};
    if (variables !== undefined) body.variables = variables;
    if (secretVariables !== undefined) body.secret_variables = secretVariables;
    if (metadata !== undefined) body.metadata = metadata;
    const path = `/api/plans/${id(planId, 'planId')}/execute`;
    return this._request('POST', path, { body, idempotencyKey });
  }

  /** Creates and starts an execution of an inline plan; resolves with its execution id. */
  async executePlan(plan, { variables, secretVariables, metadata, idempotencyKey } = {}) {
    const options = { variables, secretVariables, metadata, start: true, idempotencyKey };
    const created = await this.createExecution(plan, options);
    return created.execution_id;
  }

  // ---- Integrations ----

  async listIntegrations() {
    return this._request('GET', '/api/integrations');
  }

  async getIntegration(integrationId) {
    return this._request('GET', `/api/integrations/${id(integrationId, 'integrationId')}`);
  }

  async getIntegrationCapabilities(integrationId) {
    return this._request('GET', `/api/integrations/${id(integrationId, 'integrationId')}/capabilities`);
  }

  async invokeCapability(integrationId, capabilityId, parameters = {}, { async: runAsync } = {}) {
    const body = { parameters };
    if (runAsync !== undefined) body.async = runAsync;
    return this._request(
      'POST',
      `/api/integrations/${id(integrationId, 'integrationId')}/capabilities/${id(capabilityId, 'capabilityId')}`,
      { body },
    );
  }

  async getInvocation(invocationId) {
    return this._request('GET', `/api/integrations/invocations/${id(invocationId, 'invocationId')}`);
  }

  // ---- Events and webhook subscriptions ----

  async listEvents(filters = {}) {
    return this._request('GET', '/api/events', { query: filters });
  }

  async getEvent(eventId) {
    return this._request('GET', `/api/events/${id(eventId, 'eventId')}`);
  }

  /** `{callback_url (or callbackUrl), types?, filter?, expiration?, secret?}` */
  async createSubscription(subscription) {
    return this._request('POST', '/api/events/subscriptions', { body: snakeKeys(subscription) });
  }

  async listSubscriptions() {
    return this._request('GET', '/api/events/subscriptions');
  }

  async getSubscription(subscriptionId) {
    return this._request('GET', `/api/events/subscriptions/${id(subscriptionId, 'subscriptionId')}`);
  }

  async deleteSubscription(subscriptionId) {
    return this._request('DELETE', `/api/events/subscriptions/${id(subscriptionId, 'subscriptionId')}`);
  }

  /** Nothing is delivered until `resumeSubscription`; the subscription's record. */
  async pauseSubscription(subscriptionId) {
    return this._request('POST', `/api/events/subscriptions/${id(subscriptionId, 'subscriptionId')}/pause`);
  }

  /** Delivery goes on from where it stopped (after a pause for too many failures too). */
  async resumeSubscription(subscriptionId) {
    return this._request('POST', `/api/events/subscriptions/${id(subscriptionId, 'subscriptionId')}/resume`);
  }

  /** The event of a finished delivery (a dead one, say) again: the new delivery, `pending`. */
  async redeliver(subscriptionId, deliveryId) {
    const sid = id(subscriptionId, 'subscriptionId');
    return this._request('POST', `/api/events/subscriptions/${sid}/deliveries/${id(deliveryId, 'deliveryId')}/redeliver`);
  }

  async listDeliveries(subscriptionId, filters = {}) {
    return this._request(
      'GET',
      `/api/events/subscriptions/${id(subscriptionId, 'subscriptionId')}/deliveries`,
      { query: filters },
    );
  }

  // ---- System ----

  /** The health report; an unhealthy server's report (HTTP 503) is returned too, not thrown. */
  async health() {
    return this._request('GET', '/health', {
      okStatuses: [503],
      // A 503 without a health report (a proxy's) is an error after all.
      check: (data) => data !== null && typeof data === 'object' && 'status' in data,
    });
  }

  /** `{nodes}`: the servers of the cluster on this server's database, oldest first. */
  async listNodes() {
    return this._request('GET', '/api/nodes');
  }

  /** `{subject, scopes}`: who this client's token is (its scopes say what it may do). */
  async getMe() {
    return this._request('GET', '/api/me');
  }

  /** The metrics as JSON, or as Prometheus text with `{format: 'prometheus'}`. */
  async metrics({ format } = {}) {
    if (format === 'prometheus') {
      return this._request('GET', '/metrics', { query: { format }, accept: 'text/plain' });
    }
    return this._request('GET', '/metrics', { query: { format } });
  }

  // ---- Live updates ----

  /** The execution's messages `{type, timestamp, data}`: its earlier ones replayed, then live; closed by the server after `execution_completed`. */
  subscribeToExecution(executionId) {
    const url = this._socketUrl(`/ws/executions/${id(executionId, 'executionId')}`, {});
    return new Subscription(this, url, { token: this.token, executionId, kind: 'execution' });
  }

  /** Event records, live; `since` (an event id) replays every matching event after it first. */
  subscribeToEvents({ types, executionId, since } = {}) {
    const url = this._socketUrl('/ws/events', { types, executionId, since });
    return new Subscription(this, url, { token: this.token, kind: 'events' });
  }

  /**
   * Resolves with the execution once it has ended (completed, failed or cancelled): waits
   * on the execution's WebSocket for `execution_completed`, and polls when no socket can
   * be had. `timeout` is in milliseconds (none by default).
   */
  async waitForExecution(executionId, { timeout, pollInterval = this.pollInterval, websocket = true } = {}) {
    id(executionId, 'executionId');
    const controller = new AbortController();
    this._waits.add(controller);
    let timer;
    if (timeout !== undefined && timeout !== null) {
      timer = setTimeout(() => {
        controller.abort(
          new SynthesisError(`execution ${executionId} did not end within ${timeout} ms`, { code: 'timeout' }),
        );
      }, timeout);
    }
    try {
      if (websocket) await this._completionMessage(executionId, controller.signal);
      for (;;) {
        const execution = await this.getExecution(executionId, { signal: controller.signal });
        if (TERMINAL_STATUSES.has(execution.status)) return execution;
        await sleep(pollInterval, controller.signal);
      }
    } finally {
      clearTimeout(timer);
      this._waits.delete(controller);
    }
  }

  /** Closes every open socket and ends pending waits (they reject with code `closed`). */
  close() {
    for (const controller of [...this._waits]) {
      controller.abort(new SynthesisError('the client was closed', { code: 'closed' }));
    }
    for (const socket of [...this._sockets]) socket.close();
  }

  // ---- internals ----

  async _request(
    method,
    path,
    { query, body, accept, signal, okStatuses = [], check, idempotencyKey } = {},
  ) {
    const url = this.baseUrl + path + queryString(query);
    const headers = { Accept: accept ?? 'application/json', ...this.headers };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (idempotencyKey !== undefined) headers['Idempotency-Key'] = idempotencyKey;
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (signal) init.signal = signal;
    let response;
    let text;
    try {
      response = this._fetch ? await this._fetch(url, init) : await globalThis.fetch(url, init);
      text = await response.text();
    } catch (cause) {
      if (signal && signal.aborted) throw signal.reason;
      throw new SynthesisError(`cannot reach Synthesis at ${this.baseUrl}: ${cause.message}`, {
        code: 'unavailable',
        cause,
      });
    }
    let data = text;
    const type = response.headers.get('content-type') || '';
    if (text && type.includes('json')) {
      try {
        data = JSON.parse(text);
      } catch (cause) {
        if (response.ok) {
          throw new SynthesisError(`malformed JSON from ${method} ${path}`, {
            status: response.status,
            code: 'invalid_response',
            body: text,
            cause,
          });
        }
      }
    }
    const accepted = okStatuses.includes(response.status) && (!check || check(data));
    if (!response.ok && !accepted) {
      throw errorFromResponse(response.status, response.statusText, data);
    }
    return text === '' ? null : data;
  }

  _socketUrl(path, params) {
    const base = typeof location !== 'undefined' && location ? location.href : undefined;
    const url = new URL(this.baseUrl + path + queryString(params), base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.toString();
  }

  /** Why the server refuses a WebSocket at `wsUrl` (HTTP 401 or 403), or null. */
  async _upgradeRefusal(wsUrl) {
    try {
      const url = new URL(wsUrl);
      url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
      const init = { headers: { Accept: 'application/json', ...this.headers } };
      if (this.token) init.headers.Authorization = `Bearer ${this.token}`;
      const response = this._fetch ? await this._fetch(url.toString(), init) : await globalThis.fetch(url.toString(), init);
      const text = await response.text();
      if (response.status !== 401 && response.status !== 403) return null;
      let body = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not the API's error body
      }
      return errorFromResponse(response.status, response.statusText, body);
    } catch {
      return null;
    }
  }

  async _webSocketImpl() {
    if (this._WebSocket) return { Impl: this._WebSocket, nodeWs: false };
    if (typeof globalThis.WebSocket === 'function') return { Impl: globalThis.WebSocket, nodeWs: false };
    return { Impl: await loadWs(), nodeWs: true };
  }

  /** Waits for the execution's `execution_completed` message on a socket already open for
   * it (the caller's), else on one of its own. Returns when the socket ends without it. */
  async _completionMessage(executionId, signal) {
    const shared = [...this._sockets].find(
      (s) => s.kind === 'execution' && s.executionId === executionId && s.readyState <= OPEN,
    );
    for (const existing of shared ? [shared, null] : [null]) {
      const socket = existing ?? this.subscribeToExecution(executionId);
      let outcome;
      try {
        outcome = await abortable(signal, completion(socket));
      } finally {
        if (!existing) socket.close();
      }
      if (outcome.completed || outcome.code === 4404) return;
    }
  }
}

/** Resolves {completed: true} on `execution_completed`, or {completed: false, code} when the socket closes first. */
function completion(socket) {
  return new Promise((resolve) => {
    if (socket.readyState === CLOSED) {
      resolve({ completed: false, code: socket._closeEvent?.code });
      return;
    }
    const done = (outcome) => {
      socket._removeInternal('message', onMessage);
      socket._removeInternal('close', onClose);
      resolve(outcome);
    };
    const onMessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && message.type === 'execution_completed') done({ completed: true });
    };
    const onClose = (event) => done({ completed: false, code: event.code });
    socket._internal.message.push(onMessage);
    socket._internal.close.push(onClose);
  });
}

export default SynthesisClient;

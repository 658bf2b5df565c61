// The JavaScript client against a real Synthesis server, started here as a subprocess.
//
// Run from clients/js: `node --test`. The server is `../../../.venv/bin/python -m synthesis
// serve` (relative to this file, i.e. the repository's .venv), or $SYNTHESIS_PYTHON.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket as NodeWebSocket } from 'ws';
import { Subscription, SynthesisClient, SynthesisError } from 'synthesis-client';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PACKAGE_DIR = path.resolve(HERE, '..');
const REPO = path.resolve(HERE, '../../..');
const PYTHON = process.env.SYNTHESIS_PYTHON || path.join(REPO, '.venv/bin/python');
// The API reference lives next to the repository; when it is there, the README's example
// must be the reference's, character for character.
const REFERENCE = process.env.SYNTHESIS_API_REFERENCE || path.resolve(REPO, '../shared/seed/synthesis-api-reference.md');

const TOKEN = 'js-client-test-token';
const READ_TOKEN = 'js-client-read-only';

let server;
let serverExit;
let serverLog = '';
let dataDir;
let base;
let client;

// ---- helpers ----

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check, what, timeoutMs = 10000, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(intervalMs);
  }
}

async function rejectsWith(promise, { status, code }) {
  let error;
  try {
    await promise;
  } catch (err) {
    error = err;
  }
  assert.ok(error, `expected a SynthesisError ${code}`);
  assert.ok(error instanceof SynthesisError, `not a SynthesisError: ${error}`);
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'SynthesisError');
  assert.equal(error.code, code, error.message);
  if (status !== undefined) assert.equal(error.status, status);
  return error;
}

const commandStep = (id, command, extra = {}) => ({ id, type: 'command', parameters: { command }, ...extra });
const plan = (name, steps, extra = {}) => ({ name, description: `${name} (js client test)`, steps, ...extra });

/** Events of an execution, oldest first, as the REST API lists them. */
async function restEvents(executionId) {
  const page = await client.listEvents({ executionId, limit: 1000 });
  assert.equal(page.total, page.events.length);
  return page.events.slice().reverse();
}

/** Resolves once a step of the execution has printed something: its process is up. (The
 * server has a race there: a cancel that comes while the process is being spawned leaves
 * it running to its end, and `execution_completed` comes only then.) */
async function running(executionId) {
  for await (const message of client.subscribeToExecution(executionId)) {
    if (message.type === 'step_output') return;
  }
  throw new Error(`execution ${executionId} ended without output`);
}

function opened(subscription) {
  return new Promise((resolve, reject) => {
    if (subscription.readyState === Subscription.OPEN) resolve();
    subscription.addEventListener('open', () => resolve());
    subscription.addEventListener('close', (event) => reject(new Error(`closed before open: ${event.code}`)));
  });
}

function run(file, args, options) {
  return new Promise((resolve) => {
    execFile(file, args, options, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, signal: error?.signal ?? null, stdout, stderr });
    });
  });
}

// ---- the server ----

before(async () => {
  assert.ok(existsSync(PYTHON), `no Python at ${PYTHON}: create the repository's .venv or set SYNTHESIS_PYTHON`);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'synthesis-js-client-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SYNTHESIS_')));
  server = spawn(
    PYTHON,
    ['-m', 'synthesis', 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir,
      '--token', TOKEN, '--token', `${READ_TOKEN}:read`, '--shutdown-grace', '2'],
    { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server.stdout.on('data', (chunk) => { serverLog += chunk; });
  server.stderr.on('data', (chunk) => { serverLog += chunk; });
  serverExit = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  // If this process is stopped early (a test timeout, ^C), the server goes too.
  const orphaned = () => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  };
  process.once('exit', orphaned);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      orphaned();
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(1);
    });
  }
  let exited = null;
  serverExit.then((result) => { exited = result; });
  await until(async () => {
    if (exited) throw new Error(`the server exited (${JSON.stringify(exited)}):\n${serverLog}`);
    try {
      const response = await fetch(`${base}/health`);
      return response.ok;
    } catch {
      return false;
    }
  }, 'the server to answer /health', 20000, 100);
  client = new SynthesisClient(base, { token: TOKEN });
});

after(async () => {
  client?.close();
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGKILL');
    await serverExit;
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

// ---- the reference's example ----

function readmeExample(readme) {
  const match = /```javascript\n([\s\S]*?)```/.exec(readme);
  assert.ok(match, 'README.md has a ```javascript example');
  return match[1];
}

test('the API reference example runs as written', async () => {
  const example = readmeExample(await readFile(path.join(PACKAGE_DIR, 'README.md'), 'utf8'));
  if (existsSync(REFERENCE)) {
    const reference = await readFile(REFERENCE, 'utf8');
    const block = /### JavaScript Client\n\n```javascript\n([\s\S]*?)```/.exec(reference);
    assert.ok(block, 'the reference has a JavaScript Client example');
    assert.equal(example, block[1], "the README's example is the reference's, as written");
  }
  // The only change: the test server's URL for the reference's http://localhost:8009.
  assert.equal(example.split("'http://localhost:8009'").length, 2);
  const script = example.replace("'http://localhost:8009'", `'${base}'`);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'synthesis-js-example-'));
  try {
    await mkdir(path.join(dir, 'node_modules'));
    await symlink(PACKAGE_DIR, path.join(dir, 'node_modules', 'synthesis-client'), 'dir');
    await writeFile(path.join(dir, 'example.mjs'), script);
    const env = { ...process.env, SYNTHESIS_TOKEN: TOKEN };
    const result = await run(process.execPath, ['example.mjs'], { cwd: dir, env, timeout: 20000 });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0, result.stdout);

    const newest = await client.listExecutions({ limit: 1 });
    const executionId = newest.executions[0].execution_id;
    assert.equal(newest.executions[0].name, 'Example Plan');
    const types = (await restEvents(executionId)).map((e) => e.type);
    assert.equal(types[0], 'execution_created');
    assert.equal(types.at(-1), 'execution_completed');
    const expected = [
      ...types.map((type) => `Event: ${type}`),
      'Execution completed with status: completed',
      'Step step1 output: Hello, World!\n',
      '',
    ].join('\n');
    assert.equal(result.stdout, expected);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---- REST ----

test('secret variables are masked, and the plan and execute bodies carry them', async () => {
  const secretPlan = plan('secret', [commandStep('say', 'echo "$SYNTHESIS_VAR_PIN"')]);
  const id = await client.executePlan(secretPlan, { variables: { pin: '2468-1357' }, secretVariables: ['pin'] });
  const done = await client.waitForExecution(id, { timeout: 10000 });
  assert.deepEqual([done.variables.pin, done.steps[0].output], ['***', '***\n']);
  const stored = await client.createPlan(secretPlan);
  const run = await client.executePlanById(stored.plan_id, { variables: { pin: '2468-1357' }, secretVariables: ['pin'] });
  assert.equal((await client.waitForExecution(run.execution_id, { timeout: 10000 })).variables.pin, '***');
  await client.deletePlan(stored.plan_id);
});

test('executions: create, start, get, list, steps, one step, variables', async () => {
  const created = await client.createExecution(
    plan('greeting', [commandStep('greet', 'echo Hello, ${who}'), commandStep('shout', 'printf %s "$SYNTHESIS_VAR_GREET_OUTPUT" | tr a-z A-Z')]),
    { variables: { who: 'JS' }, metadata: { tags: ['js-client'], created_by: 'js-tester', team: 'a' } },
  );
  assert.equal(created.status, 'created');
  assert.equal(created.plan.name, 'greeting');
  const id = created.execution_id;

  const started = await client.startExecution(id);
  assert.equal(started.execution_id, id);
  assert.equal(started.status, 'running');

  const done = await client.waitForExecution(id, { timeout: 10000 });
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.metadata, { tags: ['js-client'], created_by: 'js-tester', team: 'a' });

  const fetched = await client.getExecution(id);
  assert.equal(fetched.execution_id, id);
  assert.deepEqual(fetched.steps.map((s) => s.id), ['greet', 'shout']);
  assert.ok('node_id' in fetched, 'an execution names the node running it (null when none)');

  const steps = await client.getExecutionSteps(id);
  assert.equal(steps.execution_id, id);
  assert.deepEqual(steps.steps.map((s) => [s.id, s.status, s.output]), [
    ['greet', 'completed', 'Hello, JS\n'],
    ['shout', 'completed', 'HELLO, JS\n'],
  ]);

  const step = await client.getExecutionStep(id, 'greet');
  assert.equal(step.id, 'greet');
  assert.deepEqual(step.parameters, { command: 'echo Hello, JS' }); // as it ran, variables substituted

  const variables = await client.getExecutionVariables(id);
  assert.equal(variables.variables.who, 'JS');
  assert.equal(variables.variables.greet_output, 'Hello, JS\n');

  const listed = await client.listExecutions({
    tag: 'js-client', createdBy: 'js-tester', status: 'completed', fromDate: new Date(Date.now() - 3600e3), limit: 10,
  });
  assert.deepEqual(listed.executions.map((e) => e.execution_id), [id]);
  assert.equal(listed.total, 1);
  assert.equal(listed.limit, 10);
  const none = await client.listExecutions({ tag: 'js-client', to_date: '2000-01-01T00:00:00Z' });
  assert.equal(none.total, 0);
});

test('executions: pause, resume, cancel, and transitions that are not allowed', async () => {
  const id = await client.executePlan(plan('pausable', [commandStep('first', 'sleep 0.3'), commandStep('second', 'echo second')]));
  const paused = await client.pauseExecution(id);
  assert.equal(paused.status, 'paused');
  assert.equal((await client.getExecution(id)).status, 'paused');
  await rejectsWith(client.startExecution(id), { status: 409, code: 'invalid_state' });
  const resumed = await client.resumeExecution(id);
  assert.equal(resumed.status, 'running');
  const done = await client.waitForExecution(id, { timeout: 10000 });
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.steps.map((s) => s.status), ['completed', 'completed']);
  await rejectsWith(client.resumeExecution(id), { status: 409, code: 'invalid_state' });

  const long = await client.executePlan(plan('long', [commandStep('sleepy', 'echo ready; sleep 30')]));
  await running(long);
  const cancelled = await client.cancelExecution(long);
  assert.equal(cancelled.status, 'cancelled');
  const ended = await client.waitForExecution(long, { timeout: 10000 });
  assert.equal(ended.status, 'cancelled');
  assert.equal(ended.steps[0].status, 'cancelled');
});

test('plans: create, get, list, update, execute by id, delete', async () => {
  const created = await client.createPlan(plan('stored', [commandStep('say', 'echo ${word}')], {
    variables: { word: 'default' },
    metadata: { tags: ['js-plans'], created_by: 'js-tester' },
  }));
  const planId = created.plan_id;
  assert.equal(created.name, 'stored');
  assert.equal(created.updated_at, null);

  const fetched = await client.getPlan(planId);
  assert.deepEqual(fetched.steps, created.steps);
  assert.deepEqual(fetched.variables, { word: 'default' });

  const listed = await client.listPlans({ tag: 'js-plans', createdBy: 'js-tester' });
  assert.deepEqual(listed.plans.map((p) => p.plan_id), [planId]);

  const updated = await client.updatePlan(planId, plan('stored v2', [commandStep('say', 'echo v2 ${word}')], {
    variables: { word: 'default' },
    metadata: { tags: ['js-plans', 'updated'] },
  }));
  assert.equal(updated.name, 'stored v2');
  assert.ok(updated.updated_at);

  const run1 = await client.executePlanById(planId, { variables: { word: 'given' }, metadata: { tags: ['js-run'] } });
  assert.equal(run1.plan_id, planId);
  const done = await client.waitForExecution(run1.execution_id, { timeout: 10000 });
  assert.equal(done.status, 'completed');
  assert.equal(done.plan_id, planId);
  assert.equal(done.steps[0].output, 'v2 given\n');
  const run2 = await client.executePlanById(planId);
  assert.equal((await client.waitForExecution(run2.execution_id)).steps[0].output, 'v2 default\n');

  const deleted = await client.deletePlan(planId);
  assert.equal(deleted.success, true);
  await rejectsWith(client.getPlan(planId), { status: 404, code: 'not_found' });
  await rejectsWith(client.deletePlan(planId), { status: 404, code: 'not_found' });
});

test('idempotency keys: a create sent twice creates once', async () => {
  const tag = `js-idem-${Date.now()}`;
  const once = plan('once', [commandStep('a', 'true')], { metadata: { tags: [tag] } });
  const key = `${tag}-execution`;
  const first = await client.createExecution(once, { start: true, idempotencyKey: key });
  assert.deepEqual(await client.createExecution(once, { start: true, idempotencyKey: key }), first);
  assert.equal(await client.executePlan(once, { idempotencyKey: key }), first.execution_id);
  await rejectsWith(client.createExecution(once, { idempotencyKey: key }), {
    status: 409,
    code: 'idempotency_key_reused',
  });

  const stored = await client.createPlan(once, { idempotencyKey: `${tag}-plan` });
  assert.deepEqual(await client.createPlan(once, { idempotencyKey: `${tag}-plan` }), stored);
  const run = await client.executePlanById(stored.plan_id, { idempotencyKey: `${tag}-run` });
  assert.deepEqual(await client.executePlanById(stored.plan_id, { idempotencyKey: `${tag}-run` }), run);
  const both = await client.listExecutions({ tag });
  assert.equal(both.total, 2);
  assert.equal((await client.listPlans({ tag })).total, 1);
  const [newest, older] = both.executions.map((e) => e.execution_id);
  const firstPage = await client.listExecutions({ tag, limit: 1 });
  assert.deepEqual(firstPage.executions.map((e) => e.execution_id), [newest]);
  assert.ok(firstPage.next.endsWith(`after=${newest}`));
  const second = await client.listExecutions({ tag, limit: 1, after: newest });
  assert.deepEqual(second.executions.map((e) => e.execution_id), [older]);
  assert.equal(second.next, null);
  const back = await client.listExecutions({ tag, before: older });
  assert.deepEqual(back.executions.map((e) => e.execution_id), [newest]);
});

test('integrations: list, get, capabilities, invoke (waiting and async), invocation', async () => {
  const { integrations } = await client.listIntegrations();
  const ids = integrations.map((i) => i.id);
  for (const wanted of ['cli', 'api', 'mcp']) assert.ok(ids.includes(wanted), `${wanted} in ${ids}`);

  const cli = await client.getIntegration('cli');
  assert.ok(cli.capabilities.includes('execute_command'));
  assert.equal(cli.parameters.execute_command.command.required, true);

  const capabilities = await client.getIntegrationCapabilities('cli');
  assert.equal(capabilities.integration_id, 'cli');
  assert.ok(capabilities.capabilities.some((c) => c.id === 'execute_script'));

  const invoked = await client.invokeCapability('cli', 'execute_command', { command: 'echo Hello, Integration!' });
  assert.equal(invoked.status, 'completed');
  assert.equal(invoked.output, 'Hello, Integration!\n');
  const fetched = await client.getInvocation(invoked.invocation_id);
  assert.equal(fetched.invocation_id, invoked.invocation_id);
  assert.deepEqual(fetched.parameters, { command: 'echo Hello, Integration!' });

  const queued = await client.invokeCapability('cli', 'execute_command', { command: 'sleep 0.2; echo later' }, { async: true });
  const finished = await until(async () => {
    const invocation = await client.getInvocation(queued.invocation_id);
    return invocation.status === 'completed' && invocation;
  }, 'the async invocation');
  assert.equal(finished.output, 'later\n');

  await rejectsWith(client.getIntegration('nope'), { status: 404, code: 'not_found' });
  await rejectsWith(client.invokeCapability('cli', 'execute_command', {}), { status: 400, code: 'validation_error' });
});

test('events and webhook subscriptions: list, get, subscribe, deliveries, pause, resume, redeliver, delete', async () => {
  const received = [];
  let heard;
  const heardOne = new Promise((resolve) => { heard = resolve; });
  const receiver = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      received.push({ headers: request.headers, body: JSON.parse(body) });
      response.writeHead(200).end('ok');
      heard();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  try {
    const callbackUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
    const subscription = await client.createSubscription({ callbackUrl, types: ['plan_created'], secret: 's3cret' });
    assert.equal(subscription.callback_url, callbackUrl);
    assert.deepEqual(subscription.types, ['plan_created']);
    assert.equal(subscription.has_secret, true);
    const subscriptionId = subscription.subscription_id;

    assert.equal((await client.getSubscription(subscriptionId)).subscription_id, subscriptionId);
    const { subscriptions } = await client.listSubscriptions();
    assert.ok(subscriptions.some((s) => s.subscription_id === subscriptionId));

    const stored = await client.createPlan(plan('hooked', [commandStep('a', 'true')]));
    await heardOne;
    assert.equal(received[0].body.type, 'plan_created');
    assert.equal(received[0].body.payload.plan_id, stored.plan_id);
    assert.equal(received[0].headers['x-synthesis-event'], 'plan_created');
    assert.match(received[0].headers['x-synthesis-signature'], /^sha256=[0-9a-f]{64}$/);

    const event = await client.getEvent(received[0].body.event_id);
    assert.deepEqual(event, received[0].body);
    const planEvents = await client.listEvents({ type: 'plan_created', limit: 1 });
    assert.equal(planEvents.events[0].event_id, event.event_id);

    const deliveries = await until(async () => {
      const page = await client.listDeliveries(subscriptionId, { limit: 10 });
      return page.deliveries.length === 1 && page.deliveries[0].status === 'delivered' && page;
    }, 'the delivery record');
    assert.equal(deliveries.subscription_id, subscriptionId);
    assert.equal(deliveries.deliveries[0].event_id, event.event_id);
    assert.equal(deliveries.deliveries[0].status_code, 200);
    assert.equal(deliveries.deliveries[0].redelivery_of, null);

    const again = await client.redeliver(subscriptionId, deliveries.deliveries[0].delivery_id);
    assert.equal(again.status, 'pending');
    assert.equal(again.redelivery_of, deliveries.deliveries[0].delivery_id);
    await until(() => received.length === 2, 'the redelivery');
    assert.equal(received[1].body.event_id, event.event_id);
    await rejectsWith(client.redeliver(subscriptionId, 'no-such-delivery'), { status: 404, code: 'not_found' });

    const paused = await client.pauseSubscription(subscriptionId);
    assert.equal(paused.status, 'paused');
    assert.equal(paused.paused_reason, 'paused by request');
    await rejectsWith(client.pauseSubscription(subscriptionId), { status: 409, code: 'invalid_state' });
    const resumed = await client.resumeSubscription(subscriptionId);
    assert.equal(resumed.status, 'active');
    assert.equal(resumed.paused_reason, null);

    const deleted = await client.deleteSubscription(subscriptionId);
    assert.equal(deleted.success, true);
    await rejectsWith(client.getSubscription(subscriptionId), { status: 404, code: 'not_found' });
    await rejectsWith(client.getEvent('no-such-event'), { status: 404, code: 'not_found' });
    await rejectsWith(client.createSubscription({ callback_url: 'ftp://x', types: ['nope'] }), { status: 400, code: 'validation_error' });
  } finally {
    await new Promise((resolve) => receiver.close(resolve));
  }
});

test('health and metrics (JSON and Prometheus text)', async () => {
  const health = await client.health();
  assert.equal(health.status, 'healthy');
  assert.deepEqual(Object.keys(health.components).sort(), ['api', 'cluster', 'event_system', 'execution_engine', 'storage']);

  const metrics = await client.metrics();
  assert.ok(metrics.executions.total >= 1);
  assert.ok(metrics.executions.completed >= 1);
  assert.equal(typeof metrics.resource_usage.memory_mb, 'number');
  assert.equal(metrics.cluster.nodes_alive >= 1, true);

  const text = await client.metrics({ format: 'prometheus' });
  assert.equal(typeof text, 'string');
  assert.match(text, /^synthesis_executions_total\{status="completed"\} \d+$/m);
});

test('listNodes: the server is the one node of its SQLite database', async () => {
  const { nodes } = await client.listNodes();
  assert.equal(nodes.length, 1);
  const [node] = nodes;
  assert.equal(node.pid, server.pid);
  assert.equal(node.port, Number(new URL(base).port));
  assert.equal(node.status, 'alive');
  assert.equal(typeof node.node_id, 'string');
  assert.equal(typeof node.executions, 'number');
  const readOnly = new SynthesisClient(base, { token: READ_TOKEN });
  assert.deepEqual((await readOnly.listNodes()).nodes.map((n) => n.node_id), [node.node_id]);
  readOnly.close();
});

test('getMe: the token\'s scopes, so a UI shows only what it may do', async () => {
  assert.deepEqual(await client.getMe(), { subject: null, scopes: ['read', 'write'] });
  const readOnly = new SynthesisClient(base, { token: READ_TOKEN });
  assert.deepEqual((await readOnly.getMe()).scopes, ['read']);
  readOnly.close();
  const stranger = new SynthesisClient(base, { token: 'not-a-token' });
  await rejectsWith(stranger.getMe(), { status: 401, code: 'unauthenticated' });
  stranger.close();
});

// ---- errors ----

test('errors are SynthesisErrors with status, code and details', async () => {
  await rejectsWith(client.getExecution('no-such-execution'), { status: 404, code: 'not_found' });
  await rejectsWith(client.getExecutionStep('no-such-execution', 'x'), { status: 404, code: 'not_found' });

  const invalid = await rejectsWith(
    client.createExecution({ name: '', steps: [] }),
    { status: 400, code: 'validation_error' },
  );
  assert.deepEqual(invalid.details.map((d) => d.field).sort(), ['plan.name', 'plan.steps']);
  assert.ok(invalid.details.every((d) => typeof d.message === 'string' && d.message));
  assert.deepEqual(invalid.body.error.details, invalid.details);

  const badLimit = await rejectsWith(client.listExecutions({ limit: 0 }), { status: 400, code: 'validation_error' });
  assert.deepEqual(badLimit.details.map((d) => d.field), ['limit']);
  const badStatus = await rejectsWith(client.listExecutions({ status: 'sideways' }), { status: 400, code: 'validation_error' });
  assert.deepEqual(badStatus.details.map((d) => d.field), ['status']);

  const stranger = new SynthesisClient(base, { token: 'wrong-token' });
  const unauthenticated = await rejectsWith(stranger.listPlans(), { status: 401, code: 'unauthenticated' });
  assert.deepEqual(unauthenticated.details, []);
  assert.equal((await stranger.health()).status, 'healthy'); // /health is open

  const reader = new SynthesisClient(base, { token: READ_TOKEN });
  assert.ok((await reader.listPlans()).total >= 0);
  await rejectsWith(reader.createPlan(plan('nope', [commandStep('a', 'true')])), { status: 403, code: 'permission_denied' });

  const closedPort = await freePort();
  const nowhere = new SynthesisClient(`http://127.0.0.1:${closedPort}`, { token: TOKEN });
  const unreachable = await rejectsWith(nowhere.health(), { status: null, code: 'unavailable' });
  assert.ok(unreachable.cause);

  await assert.rejects(client.getExecution(''), TypeError);
});

// ---- waiting ----

test('waitForExecution listens on the socket, and falls back to polling', async () => {
  const counted = () => {
    const gets = [];
    const fetchImpl = (url, init) => {
      if (init.method === 'GET' && /\/api\/executions\/[^/]+$/.test(new URL(url).pathname)) gets.push(url);
      return fetch(url, init);
    };
    return { gets, fetchImpl };
  };
  const slow = plan('slow', [commandStep('nap', 'sleep 0.4'), commandStep('after', 'echo awake')]);

  // The socket: one GET, once execution_completed has come.
  const viaSocket = counted();
  const socketClient = new SynthesisClient(base, { token: TOKEN, fetch: viaSocket.fetchImpl, pollInterval: 20 });
  const first = await socketClient.executePlan(slow);
  const done = await socketClient.waitForExecution(first, { timeout: 10000 });
  assert.equal(done.status, 'completed');
  assert.equal(done.steps[1].output, 'awake\n');
  assert.equal(viaSocket.gets.length, 1);

  // No socket to be had (a proxy that refuses WebSockets): polling.
  class RefusedWebSocket {
    constructor(url) {
      this.url = url;
      setTimeout(() => {
        this.onerror?.({ type: 'error' });
        this.onclose?.({ code: 1006, reason: '', wasClean: false });
      }, 5);
    }
    close() {}
  }
  const viaPolls = counted();
  const pollingClient = new SynthesisClient(base, { token: TOKEN, fetch: viaPolls.fetchImpl, WebSocket: RefusedWebSocket, pollInterval: 20 });
  const second = await pollingClient.executePlan(slow);
  const polled = await pollingClient.waitForExecution(second, { timeout: 10000 });
  assert.equal(polled.status, 'completed');
  assert.ok(viaPolls.gets.length >= 3, `${viaPolls.gets.length} polls`);

  // Sockets turned off.
  const noSocket = counted();
  const plainClient = new SynthesisClient(base, { token: TOKEN, fetch: noSocket.fetchImpl });
  const third = await plainClient.executePlan(slow);
  assert.equal((await plainClient.waitForExecution(third, { websocket: false, pollInterval: 20 })).status, 'completed');
  assert.ok(noSocket.gets.length >= 3);

  // Unknown id, timeout, close() during a wait.
  await rejectsWith(client.waitForExecution('no-such-execution', { timeout: 5000 }), { status: 404, code: 'not_found' });
  const long = await client.executePlan(plan('long wait', [commandStep('sleepy', 'echo ready; sleep 30')]));
  await running(long);
  const started = Date.now();
  await rejectsWith(client.waitForExecution(long, { timeout: 200 }), { code: 'timeout' });
  assert.ok(Date.now() - started < 2000);
  const waiting = client.waitForExecution(long);
  await pause(50);
  client.close();
  await rejectsWith(waiting, { code: 'closed' });
  await client.cancelExecution(long);
  assert.equal((await client.waitForExecution(long, { timeout: 10000 })).status, 'cancelled');
});

// ---- sockets ----

test('subscribeToExecution: every message in order, replayed for a late subscriber', async () => {
  const id = await client.executePlan(plan('three', [commandStep('one', 'echo 1'), commandStep('two', 'echo 2'), commandStep('three', 'echo 3')]));
  const live = [];
  for await (const message of client.subscribeToExecution(id)) live.push(message);
  const rest = await restEvents(id);
  assert.equal(live.at(-1).type, 'execution_completed');
  assert.deepEqual(live.map((m) => [m.type, m.timestamp]), rest.map((e) => [e.type, e.timestamp]));
  assert.deepEqual(live.map((m) => m.data), rest.map((e) => e.payload));
  assert.deepEqual(
    live.filter((m) => m.type === 'step_started').map((m) => m.data.step_id),
    ['one', 'two', 'three'],
  );

  // After the end: the same messages again, through onmessage, then a normal close.
  const late = client.subscribeToExecution(id);
  assert.equal(late.readyState, Subscription.CONNECTING);
  assert.ok(!late.url.includes('token'), 'Node sends the token in a header, not the URL');
  const messages = [];
  late.onmessage = (event) => messages.push(JSON.parse(event.data).type);
  const closed = await late.closed;
  assert.equal(closed.code, 1000);
  assert.equal(late.readyState, Subscription.CLOSED);
  assert.deepEqual(messages, rest.map((e) => e.type));

  // Where the WebSocket API cannot set headers (browsers), the token goes as ?token=.
  const urls = [];
  class BrowserLikeWebSocket extends NodeWebSocket {
    constructor(url) {
      urls.push(url);
      super(url);
    }
  }
  const browserish = new SynthesisClient(base, { token: TOKEN, WebSocket: BrowserLikeWebSocket });
  const replayed = [];
  for await (const message of browserish.subscribeToExecution(id)) replayed.push(message.type);
  assert.deepEqual(replayed, rest.map((e) => e.type));
  assert.equal(new URL(urls[0]).searchParams.get('token'), TOKEN);

  // An unknown execution (4404) and a bad token (HTTP 401) end the iterator with an error.
  await rejectsWith((async () => {
    for await (const _ of client.subscribeToExecution('no-such-execution')) { /* nothing */ }
  })(), { status: 404, code: 'not_found' });
  const stranger = new SynthesisClient(base, { token: 'wrong-token' });
  const refused = (async () => {
    for await (const _ of stranger.subscribeToExecution(id)) { /* nothing */ }
  })();
  await rejectsWith(refused, { status: 401, code: 'unauthenticated' });
  // The same where the WebSocket API does not tell the status (browsers): the client asks.
  class OpaqueWebSocket { // as a browser's: an error event says nothing
    constructor(url) {
      const ws = new NodeWebSocket(url);
      this.ws = ws;
      ws.onopen = (event) => this.onopen?.(event);
      ws.onmessage = (event) => this.onmessage?.({ data: event.data });
      ws.onerror = () => this.onerror?.({ type: 'error' });
      ws.onclose = (event) => this.onclose?.({ code: event.code, reason: event.reason, wasClean: event.wasClean });
    }
    close(code, reason) { this.ws.close(code, reason); }
  }
  const strangerInABrowser = new SynthesisClient(base, { token: 'wrong-token', WebSocket: OpaqueWebSocket });
  const refusedToo = strangerInABrowser.subscribeToEvents();
  const errorEvents = [];
  refusedToo.onerror = (event) => errorEvents.push(event.error.code);
  await rejectsWith((async () => {
    for await (const _ of refusedToo) { /* nothing */ }
  })(), { status: 401, code: 'unauthenticated' });
  assert.deepEqual(errorEvents, ['unauthenticated']);

  // Closed by the caller before it opened: a close event, no error; the iterator just ends.
  const early = client.subscribeToExecution(id);
  const errors = [];
  early.onerror = (event) => errors.push(event);
  early.close();
  const seenEarly = [];
  for await (const message of early) seenEarly.push(message);
  assert.deepEqual(seenEarly, []);
  assert.equal((await early.closed).code, 1000);
  assert.deepEqual(errors, []);

  // A wait shares the caller's socket for the execution; if the caller closes it before
  // the end, the wait goes on with a socket of its own.
  const slowId = await client.executePlan(plan('shared', [commandStep('nap', 'sleep 0.2')]));
  const watched = client.subscribeToExecution(slowId);
  const firstTypes = [];
  watched.onmessage = (event) => {
    firstTypes.push(JSON.parse(event.data).type);
    watched.close();
  };
  const finished = await client.waitForExecution(slowId, { timeout: 10000 });
  assert.equal(finished.status, 'completed');
  assert.deepEqual(firstTypes, ['execution_created']);
});

test('subscribeToEvents: live with filters, replay with since, close()', async () => {
  // Live: only the types asked for, from the moment the socket is open.
  const liveClient = new SynthesisClient(base, { token: TOKEN });
  const completions = liveClient.subscribeToEvents({ types: ['execution_started', 'execution_completed'] });
  await opened(completions);
  const id = await client.executePlan(plan('streamed', [commandStep('a', 'echo a'), commandStep('b', 'echo b')]));
  const seen = [];
  for await (const record of completions) {
    if (record.execution_id !== id) continue;
    seen.push(record.type);
    if (record.type === 'execution_completed') break; // leaving the loop closes the socket
  }
  assert.deepEqual(seen, ['execution_started', 'execution_completed']);
  await completions.closed;
  assert.equal(completions.readyState, Subscription.CLOSED);

  // Replay: everything of the execution after its first event, in the REST order, once.
  const rest = await restEvents(id);
  const replay = client.subscribeToEvents({ executionId: id, since: rest[0].event_id });
  const replayed = [];
  for await (const record of replay) {
    replayed.push(record);
    if (replayed.length === rest.length - 1) break;
  }
  assert.deepEqual(replayed, rest.slice(1));

  // since with a type filter
  const onlySteps = client.subscribeToEvents({ executionId: id, since: rest[0].event_id, types: ['step_completed'] });
  const steps = [];
  for await (const record of onlySteps) {
    steps.push(record.payload.step_id);
    if (steps.length === 2) break;
  }
  assert.deepEqual(steps, ['a', 'b']);

  // Unknown since (4404) and unknown type (4400).
  await rejectsWith((async () => {
    for await (const _ of client.subscribeToEvents({ since: 'no-such-event' })) { /* nothing */ }
  })(), { status: 404, code: 'not_found' });
  await rejectsWith((async () => {
    for await (const _ of client.subscribeToEvents({ types: ['nope'] })) { /* nothing */ }
  })(), { status: 400, code: 'validation_error' });

  // close() closes every socket the client has open; the client stays usable.
  const a = liveClient.subscribeToEvents();
  const b = liveClient.subscribeToEvents({ types: 'plan_created' });
  await Promise.all([opened(a), opened(b)]);
  const closeEvents = [];
  a.onclose = (event) => closeEvents.push(event.byClient);
  liveClient.close();
  await Promise.all([a.closed, b.closed]);
  assert.equal(a.readyState, Subscription.CLOSED);
  assert.equal(b.readyState, Subscription.CLOSED);
  assert.deepEqual(closeEvents, [true]);
  assert.equal((await liveClient.health()).status, 'healthy');
});

// ---- the package ----

test('the type declarations cover every method, and the package shape', async () => {
  const dts = await readFile(path.join(PACKAGE_DIR, 'index.d.ts'), 'utf8');
  const body = dts.slice(dts.indexOf('export class SynthesisClient'));
  const declared = new Set([...body.matchAll(/^  ([a-zA-Z]+)\(/gm)].map((m) => m[1]).filter((n) => n !== 'constructor'));
  const implemented = Object.getOwnPropertyNames(SynthesisClient.prototype).filter((n) => n !== 'constructor' && !n.startsWith('_'));
  assert.deepEqual([...declared].sort(), implemented.sort());
  for (const name of [
    'createExecution', 'listExecutions', 'getExecution', 'startExecution', 'pauseExecution', 'resumeExecution',
    'cancelExecution', 'getExecutionSteps', 'getExecutionStep', 'getExecutionVariables', 'createPlan', 'listPlans',
    'getPlan', 'updatePlan', 'deletePlan', 'executePlanById', 'executePlan', 'listIntegrations', 'getIntegration',
    'getIntegrationCapabilities', 'invokeCapability', 'getInvocation', 'listEvents', 'getEvent', 'createSubscription',
    'listSubscriptions', 'getSubscription', 'deleteSubscription', 'listDeliveries', 'health', 'listNodes', 'getMe', 'metrics',
    'waitForExecution', 'subscribeToExecution', 'subscribeToEvents', 'close',
  ]) {
    assert.ok(implemented.includes(name), `${name} is implemented`);
  }
  const pkg = JSON.parse(await readFile(path.join(PACKAGE_DIR, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'synthesis-client');
  assert.equal(pkg.type, 'module');
  assert.deepEqual(Object.keys(pkg.dependencies), ['ws']);
  assert.equal(new SynthesisClient().baseUrl, 'http://localhost:8009');
  assert.equal(new SynthesisClient('http://h:1/prefix/').baseUrl, 'http://h:1/prefix');
});

// Last: the server stops cleanly.
test('the server exits 0 on SIGTERM', async () => {
  client.close();
  server.kill('SIGTERM');
  let timer;
  const tooLong = new Promise((resolve) => { timer = setTimeout(() => resolve('still running after 15 s'), 15000); });
  const exited = await Promise.race([serverExit, tooLong]);
  clearTimeout(timer);
  assert.deepEqual(exited, { code: 0, signal: null }, serverLog.slice(-2000));
});

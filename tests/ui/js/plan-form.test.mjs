import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  carryValues,
  initialValues,
  isValid,
  kindOf,
  own,
  parseVariablesJson,
  planDocument,
  readField,
  readVariables,
  variableFields,
} from '../../../synthesis/ui/app/logic/plan-form.js';

const STORED = {
  plan_id: 'p1',
  name: 'deploy',
  description: 'Ship it',
  created_at: '2026-01-01T00:00:00.000Z',
  updated_at: null,
  steps: [{ id: 'push', type: 'command', parameters: { command: './push.sh' } }],
  variables: { env: 'staging', replicas: 3, ratio: 0.5, dry_run: true, hosts: ['a', 'b'], extra: null, api_token: 'x' },
  secret_variables: ['env'],
  metadata: { tags: ['ops'] },
};

test('the document is the plan as one would store it, without the API\'s bookkeeping', () => {
  const document = planDocument(STORED);
  assert.deepEqual(Object.keys(document), ['name', 'description', 'variables', 'secret_variables', 'metadata', 'steps']);
  assert.equal(document.plan_id, undefined);
  assert.deepEqual(planDocument({ name: 'bare', steps: [], variables: {}, metadata: {}, description: null }), {
    name: 'bare',
    steps: [],
  });
});

test('each declared variable becomes a field typed by its default', () => {
  assert.equal(kindOf('x'), 'string');
  assert.equal(kindOf(3), 'integer');
  assert.equal(kindOf(0.5), 'number');
  assert.equal(kindOf(false), 'boolean');
  assert.equal(kindOf([1]), 'json');
  assert.equal(kindOf({}), 'json');
  assert.equal(kindOf(null), 'json');
  const fields = variableFields(STORED);
  assert.deepEqual(
    fields.map((f) => [f.name, f.kind, f.initial, f.secret]),
    [
      ['env', 'string', 'staging', true],
      ['replicas', 'integer', '3', false],
      ['ratio', 'number', '0.5', false],
      ['dry_run', 'boolean', true, false],
      ['hosts', 'json', '[\n  "a",\n  "b"\n]', false],
      ['extra', 'json', 'null', false],
      ['api_token', 'string', 'x', true],
    ],
  );
  assert.deepEqual(variableFields({ variables: undefined }), []);
});

test('the untouched form gives back the defaults, typed', () => {
  const fields = variableFields(STORED);
  const result = readVariables(fields, initialValues(fields));
  assert.ok(isValid(result));
  assert.deepEqual(result.variables, STORED.variables);
});

test('values are read as their declared type, with a clear word when they cannot be', () => {
  const field = (kind) => ({ name: 'v', kind, initial: '', secret: false });
  assert.deepEqual(readField(field('string'), ' 42 '), { value: ' 42 ' });
  assert.deepEqual(readField(field('integer'), ' 42 '), { value: 42 });
  assert.deepEqual(readField(field('integer'), '-7'), { value: -7 });
  assert.deepEqual(readField(field('integer'), '4.2'), { error: 'must be a whole number' });
  assert.deepEqual(readField(field('integer'), ''), { error: 'must be a whole number' });
  assert.deepEqual(readField(field('integer'), '99999999999999999999'), { error: 'is too big a number' });
  assert.deepEqual(readField(field('number'), '4.25'), { value: 4.25 });
  assert.deepEqual(readField(field('number'), '1e3'), { value: 1000 });
  assert.deepEqual(readField(field('number'), ''), { error: 'must be a number' });
  assert.deepEqual(readField(field('number'), 'abc'), { error: 'must be a number' });
  assert.deepEqual(readField(field('boolean'), false), { value: false });
  assert.deepEqual(readField(field('json'), '{"a": [1, 2]}'), { value: { a: [1, 2] } });
  assert.deepEqual(readField(field('json'), 'null'), { value: null });
  assert.match(readField(field('json'), '{a: 1}').error, /^is not valid JSON \(/);
  assert.match(readField(field('json'), '  ').error, /must be JSON/);
});

test('errors name the field; good fields are still read', () => {
  const fields = variableFields(STORED);
  const values = { ...initialValues(fields), replicas: 'three', hosts: '[' };
  const result = readVariables(fields, values);
  assert.equal(isValid(result), false);
  assert.deepEqual(Object.keys(result.errors).sort(), ['hosts', 'replicas']);
  assert.equal(result.variables.env, 'staging');
  assert.equal('replicas' in result.variables, false);
});

test('variables as a JSON object: {} when empty, an object only, its keys win', () => {
  assert.deepEqual(parseVariablesJson(''), { variables: {} });
  assert.deepEqual(parseVariablesJson(' {"who": "ada"} '), { variables: { who: 'ada' } });
  assert.match(parseVariablesJson('[1]').error, /JSON object/);
  assert.match(parseVariablesJson('null').error, /JSON object/);
  assert.match(parseVariablesJson('"x"').error, /JSON object/);
  assert.match(parseVariablesJson('{').error, /^not valid JSON/);
  const fields = variableFields({ variables: { who: 'world' } });
  const merged = readVariables(fields, { who: 'form' }, '{"who": "json", "more": 1}');
  assert.deepEqual(merged, { variables: { who: 'json', more: 1 }, errors: {}, jsonError: '' });
  const bad = readVariables(fields, { who: 'form' }, '{oops');
  assert.equal(isValid(bad), false);
  assert.match(bad.jsonError, /^not valid JSON/);
  // a variable named "json" is an ordinary field, not the JSON box
  const named = readVariables(variableFields({ variables: { json: 1 } }), { json: 'x' });
  assert.deepEqual(named.errors, { json: 'must be a whole number' });
  assert.equal(named.jsonError, '');
});

test('a variable named __proto__ (or constructor) is read and sent like any other', () => {
  // The plan as the API gives it (JSON.parse makes "__proto__" an ordinary key).
  const real = variableFields(JSON.parse('{"variables": {"__proto__": "default", "constructor": 1}}'));
  assert.deepEqual(real.map((f) => f.name), ['__proto__', 'constructor']);
  const read = readVariables(real, initialValues(real));
  assert.equal(JSON.stringify(read.variables), '{"__proto__":"default","constructor":1}');
  assert.equal(Object.getPrototypeOf(read.variables), Object.prototype);
  const typed = readVariables(real, JSON.parse('{"__proto__": "typed", "constructor": "2"}'));
  assert.equal(JSON.stringify(typed.variables), '{"__proto__":"typed","constructor":2}');
  // its error is kept too, so the form is not sent with it wrong
  const wrong = readVariables(real, JSON.parse('{"__proto__": "typed", "constructor": "two"}'));
  assert.equal(isValid(wrong), false);
  const proto = readVariables(variableFields(JSON.parse('{"variables": {"__proto__": 1}}')), JSON.parse('{"__proto__": "one"}'));
  assert.equal(isValid(proto), false);
  assert.equal(own(proto.errors, '__proto__'), 'must be a whole number');
  assert.equal(own(proto.errors, 'toString'), undefined);
  // and from the JSON box
  const extra = readVariables([], {}, '{"__proto__": {"a": 1}}');
  assert.equal(JSON.stringify(extra.variables), '{"__proto__":{"a":1}}');
});

test('the plan stored again under the form keeps what the reader typed', () => {
  const before = variableFields({ variables: { who: 'World', times: 1, loud: false } });
  const typed = { ...initialValues(before), who: 'Ada' };
  // A new description: the same variables.
  const same = variableFields({ variables: { who: 'World', times: 1, loud: false } });
  assert.deepEqual(carryValues(before, typed, same), { who: 'Ada', times: '1', loud: false });
  // A variable added, a default changed, one now of another kind, one gone.
  const after = variableFields({ variables: { who: 'Everyone', times: 'once', extra: true } });
  assert.deepEqual(carryValues(before, { ...typed, times: '3' }, after), { who: 'Ada', times: 'once', extra: true });
  // Untouched fields follow a changed default.
  assert.deepEqual(carryValues(before, initialValues(before), after), { who: 'Everyone', times: 'once', extra: true });
});

// A stored plan as the plan page shows it: its document, and the run form for the
// variables it declares. A plan declares a variable by giving it a default value
// (docs/plans.md); the default's JSON type is the type the form reads back. Pure: no
// browser globals.

/** What the server treats as a secret by its name (synthesis/engine/secrets.py). */
const SECRET_LIKE = /pass(?:word|wd|phrase)|secret|token|api_?key|private_?key|access_?key|credential/i;

/**
 * @typedef {'string'|'integer'|'number'|'boolean'|'json'} FieldKind
 * @typedef {{name: string, kind: FieldKind, initial: string|boolean, secret: boolean}} Field
 */

/** The plan as a document one could store again (the API's bookkeeping left out). */
export function planDocument(stored) {
  const document = { name: stored.name };
  if (stored.description) document.description = stored.description;
  if (stored.variables && Object.keys(stored.variables).length) document.variables = stored.variables;
  if (stored.secret_variables?.length) document.secret_variables = stored.secret_variables;
  if (stored.metadata && Object.keys(stored.metadata).length) document.metadata = stored.metadata;
  document.steps = stored.steps;
  return document;
}

/** The kind of input a default value asks for. */
export function kindOf(value) {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return 'json'; // lists, objects, null
}

/**
 * One field per declared variable, prefilled with its default.
 * @param {{variables?: Record<string, unknown>, secret_variables?: string[]}} stored
 * @returns {Field[]}
 */
export function variableFields(stored) {
  const secret = new Set(stored.secret_variables ?? []);
  return Object.entries(stored.variables ?? {}).map(([name, value]) => {
    const kind = kindOf(value);
    let initial;
    if (kind === 'boolean') initial = value;
    else if (kind === 'string') initial = value;
    else if (kind === 'json') initial = JSON.stringify(value, null, 2);
    else initial = String(value);
    return { name, kind, initial, secret: secret.has(name) || SECRET_LIKE.test(name) };
  });
}

/** The initial values of `fields`, by name (what the form starts with). */
export function initialValues(fields) {
  return Object.fromEntries(fields.map((field) => [field.name, field.initial]));
}

/**
 * `record[key]` when `record` has it as its own, else undefined: a variable may be named
 * `__proto__` or `constructor`, which a plain object would answer from its prototype.
 */
export function own(record, key) {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/**
 * The form's values after the plan changed under it (stored again, or reloaded): what the
 * reader typed stays for each variable still declared with the same kind; the others start
 * at their (maybe new) default.
 * @param {Field[]} before the fields the values were typed in
 * @param {Record<string, unknown>} values
 * @param {Field[]} after
 */
export function carryValues(before, values, after) {
  const old = new Map(before.map((field) => [field.name, field]));
  return Object.fromEntries(
    after.map((field) => {
      const was = old.get(field.name);
      const typed = was && was.kind === field.kind && Object.hasOwn(values, field.name) && values[field.name] !== was.initial;
      return [field.name, typed ? values[field.name] : field.initial];
    }),
  );
}

const KIND_HINTS = {
  string: 'text',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  json: 'JSON',
};

/** A few words saying what a field takes. */
export function kindHint(kind) {
  return KIND_HINTS[kind] ?? '';
}

/**
 * Reads one field's value back as its declared type.
 * @returns {{value?: unknown, error?: string}}
 */
export function readField(field, raw) {
  switch (field.kind) {
    case 'string':
      return { value: String(raw ?? '') };
    case 'boolean':
      return { value: Boolean(raw) };
    case 'integer': {
      const text = String(raw ?? '').trim();
      if (!/^[-+]?\d+$/.test(text)) return { error: 'must be a whole number' };
      const value = Number(text);
      return Number.isSafeInteger(value) ? { value } : { error: 'is too big a number' };
    }
    case 'number': {
      const text = String(raw ?? '').trim();
      const value = text === '' ? Number.NaN : Number(text);
      return Number.isFinite(value) ? { value } : { error: 'must be a number' };
    }
    default: {
      const text = String(raw ?? '').trim();
      if (!text) return { error: 'must be JSON (null for none)' };
      try {
        return { value: JSON.parse(text) };
      } catch (error) {
        return { error: `is not valid JSON (${error.message})` };
      }
    }
  }
}

/**
 * Variables from a JSON object typed by the reader ('' is none).
 * @returns {{variables?: Record<string, unknown>, error?: string}}
 */
export function parseVariablesJson(text) {
  const source = String(text ?? '').trim();
  if (!source) return { variables: {} };
  let value;
  try {
    value = JSON.parse(source);
  } catch (error) {
    return { error: `not valid JSON (${error.message})` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { error: 'must be a JSON object of variables, like {"who": "ada"}' };
  }
  return { variables: value };
}

/**
 * The variables to run with: each field read as its type, then the JSON object (its keys
 * win). `errors` maps a field's name to what is wrong with it, `jsonError` the object's.
 * @param {Field[]} fields
 * @param {Record<string, unknown>} values the form's values by field name
 * @param {string} [json] extra variables as a JSON object
 * @returns {{variables: Record<string, unknown>, errors: Record<string, string>, jsonError: string}}
 */
export function readVariables(fields, values, json = '') {
  // Maps, then plain objects of own entries: assigning `variables.__proto__ = value` would
  // set the object's prototype and drop the variable.
  const variables = new Map();
  const errors = new Map();
  for (const field of fields) {
    const { value, error } = readField(field, own(values, field.name));
    if (error) errors.set(field.name, error);
    else variables.set(field.name, value);
  }
  const extra = parseVariablesJson(json);
  if (!extra.error) for (const [name, value] of Object.entries(extra.variables)) variables.set(name, value);
  return { variables: Object.fromEntries(variables), errors: Object.fromEntries(errors), jsonError: extra.error ?? '' };
}

/** Whether `readVariables` found nothing wrong. */
export function isValid({ errors, jsonError }) {
  return !jsonError && Object.keys(errors).length === 0;
}

// Run a stored plan: one field per variable it declares (prefilled with its default, read
// back as the default's type), or a JSON object when it declares none; then to the new
// execution. What is wrong is said next to the field, or under the form for the server's.
// The plan changing under the form (stored again) keeps what the reader typed.
import { html, useEffect, useMemo, useRef, useState } from '../../vendor/preact-htm.js';
import { carryValues, initialValues, isValid, kindHint, own, readVariables, variableFields } from '../logic/plan-form.js';
import { pathOf } from '../logic/routes.js';
import { navigate } from '../router.js';
import { api, handleAuthError } from '../session.js';
import { ErrorMessage } from './errors.js';

function VariableInput({ field, id, value, invalid, describedBy, onChange }) {
  const common = { id, name: field.name, 'aria-invalid': invalid ? 'true' : undefined, 'aria-describedby': describedBy };
  if (field.kind === 'boolean') {
    return html`<input type="checkbox" ...${common} checked=${Boolean(value)} onChange=${(e) => onChange(e.target.checked)} />`;
  }
  if (field.kind === 'json') {
    const rows = Math.min(10, Math.max(2, String(value).split('\n').length));
    return html`<textarea ...${common} rows=${rows} spellcheck="false" value=${value}
      onInput=${(e) => onChange(e.target.value)}></textarea>`;
  }
  const numeric = field.kind === 'integer' || field.kind === 'number';
  return html`<input ...${common} type=${field.secret ? 'password' : 'text'} autocomplete="off" spellcheck="false"
    inputmode=${numeric ? (field.kind === 'integer' ? 'numeric' : 'decimal') : undefined}
    value=${value} onInput=${(e) => onChange(e.target.value)} />`;
}

function VariableField({ field, index, value, error, onChange }) {
  const id = `variable-${index}`;
  const hint = `${id}-hint`;
  const problem = `${id}-error`;
  return html`<div class=${`variable variable-${field.kind}`}>
    <label for=${id}>${field.name}</label>
    <${VariableInput} field=${field} id=${id} value=${value} invalid=${Boolean(error)}
      describedBy=${error ? `${hint} ${problem}` : hint} onChange=${onChange} />
    <span id=${hint} class="muted hint">${kindHint(field.kind)}${field.secret ? ', secret: shown as *** afterwards' : ''}</span>
    ${error ? html`<p id=${problem} class="error field-error">${`${field.name} ${error}`}</p>` : ''}
  </div>`;
}

function JsonVariables({ label, value, error, onChange }) {
  return html`<div class="variable variable-json">
    <label for="variables-json">${label}</label>
    <textarea id="variables-json" rows="4" spellcheck="false" placeholder='{"who": "ada"}' value=${value}
      aria-invalid=${error ? 'true' : undefined} aria-describedby=${error ? 'variables-json-error' : undefined}
      onInput=${(e) => onChange(e.target.value)}></textarea>
    ${error ? html`<p id="variables-json-error" class="error field-error">${`Variables ${error}`}</p>` : ''}
  </div>`;
}

/** The run form of a stored plan (only for a token with the write scope). */
export function RunForm({ plan }) {
  const fields = useMemo(() => variableFields(plan), [plan]);
  const [values, setValues] = useState(() => initialValues(fields));
  const typedIn = useRef(fields); // the fields `values` were typed in
  useEffect(() => {
    const before = typedIn.current;
    if (before === fields) return;
    typedIn.current = fields;
    setValues((typed) => carryValues(before, typed, fields));
  }, [fields]);
  const [json, setJson] = useState('');
  const [problems, setProblems] = useState({ errors: {}, jsonError: '' });
  const [refusal, setRefusal] = useState(null);
  const [busy, setBusy] = useState(false);
  const form = useRef(null);
  // After a refused submit, the keyboard goes to the first field to fix.
  useEffect(() => {
    if (!isValid(problems)) form.current?.querySelector('[aria-invalid="true"]')?.focus();
  }, [problems]);

  const submit = async (event) => {
    event.preventDefault();
    const read = readVariables(fields, values, json);
    setProblems(read);
    setRefusal(null);
    if (!isValid(read)) return;
    setBusy(true);
    try {
      const started = await api().executePlanById(plan.plan_id, { variables: read.variables });
      navigate(pathOf('executions', started.execution_id));
    } catch (error) {
      setBusy(false);
      if (!handleAuthError(error)) setRefusal(error);
    }
  };

  const set = (name) => (value) => setValues((old) => ({ ...old, [name]: value }));
  return html`<form ref=${form} class="run-form card" onSubmit=${submit} aria-busy=${busy ? 'true' : 'false'} novalidate>
    ${fields.length
      ? html`<p class="muted">Each variable starts at the plan's default.</p>
          ${fields.map(
            (field, index) => html`<${VariableField} key=${field.name} field=${field} index=${index}
              value=${own(values, field.name) ?? field.initial} error=${own(problems.errors, field.name)} onChange=${set(field.name)} />`,
          )}
          <details class="more-variables" open=${Boolean(json || problems.jsonError)}>
            <summary>More variables</summary>
            <${JsonVariables} label="Other variables (JSON object)" value=${json} error=${problems.jsonError}
              onChange=${setJson} />
          </details>`
      : html`<p class="muted">This plan declares no variables. Give any it reads as a JSON object, or leave it empty.</p>
          <${JsonVariables} label="Variables (JSON)" value=${json} error=${problems.jsonError} onChange=${setJson} />`}
    <div class="form-actions">
      <button type="submit" disabled=${busy}>Run</button>
      ${busy ? html`<span class="muted">Starting…</span>` : ''}
    </div>
    ${isValid(problems) ? '' : html`<p role="alert" class="error">Fix the marked variables, then run again.</p>`}
    <${ErrorMessage} error=${refusal} />
  </form>`;
}

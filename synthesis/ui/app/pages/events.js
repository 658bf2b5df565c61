// The event log as a live tail: the newest page first, then every new event on top
// (from the newest one loaded, so nothing in between is lost), filtered by type (?type=),
// with a pause that counts what arrives meanwhile.
import { Component, html, useEffect, useReducer, useRef, useState } from '../../vendor/preact-htm.js';
import { ErrorMessage } from '../components/errors.js';
import { Loading } from '../components/loading.js';
import { RelativeTime } from '../components/time.js';
import { emptyTail, payloadPreview, tailReducer } from '../logic/event-tail.js';
import { asText } from '../logic/format.js';
import { count } from '../logic/paging.js';
import { pathOf } from '../logic/routes.js';
import { EVENT_TYPES, oneOf } from '../logic/vocabulary.js';
import { useLiveEvents } from '../live.js';
import { Link, setQuery } from '../router.js';
import { api, handleAuthError } from '../session.js';

const FIRST_PAGE = 200;
const FLUSH_MS = 150; // live events are drawn in batches: a busy server does not redraw per event

/** One event; drawn again only when it is another event (the tail redraws often). */
class EventRow extends Component {
  shouldComponentUpdate(next) {
    return next.event !== this.props.event;
  }

  render({ event }) {
    const execution = event.execution_id;
    return html`<tr data-event-id=${event.event_id}>
      <td class="when"><${RelativeTime} at=${event.timestamp} /></td>
      <td><span class=${`event-type event-${event.type.split('_')[0]}`}>${event.type}</span></td>
      <td class="mono">
        ${execution
          ? html`<${Link} to=${pathOf('executions', execution)} title=${execution}>${execution.slice(0, 8)}<//>`
          : html`<span class="muted">—</span>`}
      </td>
      <td class="payload">
        <details>
          <summary class="mono">${payloadPreview(event.payload, { omit: ['execution_id'] })}</summary>
          <pre>${asText(event.payload)}</pre>
        </details>
      </td>
    </tr>`;
  }
}

/** Where the tail starts: the newest page of `type`, and the event to go live after. */
async function loadStart(type) {
  const client = api();
  // The newest event of any type first: if none of `type` exists yet, the live stream
  // still starts from a point before this page was read.
  const anchor = await client.listEvents({ limit: 1 });
  const page = await client.listEvents({ type: type || undefined, limit: FIRST_PAGE });
  return { events: page.events, since: page.events[0]?.event_id ?? anchor.events[0]?.event_id ?? null };
}

/** The live events after `start.since`, handed to `onBatch` a batch at a time. */
function useEventStream(type, start, onBatch, onResync) {
  const buffer = useRef([]);
  const timer = useRef(null);
  const key = start ? `${type}|${start.since}|${start.generation}` : 'waiting';
  useEffect(() => {
    buffer.current = []; // what an earlier stream (another type) left unsent is not this one's
    return () => {
      clearTimeout(timer.current);
      timer.current = null;
    };
  }, [key]);
  const onEvent = (event) => {
    buffer.current.push(event);
    if (timer.current !== null) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      const batch = buffer.current;
      buffer.current = [];
      onBatch(batch);
    }, FLUSH_MS);
  };
  const options = start ? { types: type ? [type] : undefined, since: start.since ?? undefined } : null;
  useLiveEvents(options, onEvent, key, { onResync });
}

function TypeFilter({ type }) {
  return html`<div>
    <label for="filter-type">Type</label>
    <select id="filter-type" value=${type} onChange=${(e) => setQuery({ type: e.target.value }, { replace: false })}>
      <option value="">any</option>
      ${EVENT_TYPES.map((t) => html`<option key=${t} value=${t}>${t}</option>`)}
    </select>
  </div>`;
}

export function EventsPage({ query }) {
  const type = oneOf(query.get('type'), EVENT_TYPES);
  const [tail, dispatch] = useReducer(tailReducer, undefined, emptyTail);
  const [start, setStart] = useState(null);
  const [error, setError] = useState(null);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    let current = true;
    setStart(null);
    loadStart(type).then(
      ({ events, since }) => {
        if (!current) return;
        setError(null);
        dispatch({ type: 'load', events });
        setStart({ since, generation });
      },
      (failure) => {
        if (current && !handleAuthError(failure)) setError(failure);
      },
    );
    return () => {
      current = false;
    };
  }, [type, generation]);

  useEventStream(
    type,
    start,
    (events) => dispatch({ type: 'arrived', events }),
    // The stream could not resume (its last event was pruned): start again from the top.
    () => setGeneration((g) => g + 1),
  );

  const togglePause = () => dispatch({ type: tail.paused ? 'resume' : 'pause' });
  return html`<section class="list-page events-page">
    <h1>Events</h1>
    <div class="toolbar">
      <${TypeFilter} type=${type} />
      <button type="button" class=${tail.paused ? undefined : 'quiet'} onClick=${togglePause}>${tail.paused ? 'Resume' : 'Pause'}</button>
      <span class="muted" aria-live="polite">
        ${tail.paused ? `Paused: ${count(tail.heldCount)} new` : start ? 'Newest on top, live' : ''}
      </span>
    </div>
    <${ErrorMessage} error=${error} />
    ${tail.events.length
      ? html`<div class="table-scroll">
          <table class="list events-table">
            <caption>Events${type ? ` · ${type}` : ''} <span class="muted">(${count(tail.events.length)} shown)</span></caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Type</th>
                <th scope="col">Execution</th>
                <th scope="col">Payload</th>
              </tr>
            </thead>
            <tbody>
              ${tail.events.map((event) => html`<${EventRow} key=${event.event_id} event=${event} />`)}
            </tbody>
          </table>
        </div>`
      : start
        ? html`<p class="empty muted">No events${type ? ` of type ${type}` : ''} yet: they appear here as they happen.</p>`
        : error
          ? ''
          : html`<${Loading} />`}
  </section>`;
}

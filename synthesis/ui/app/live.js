// Live event streams over /ws/events that survive drops: each reconnects with
// `since=<the last event it saw>`, so nothing is lost and nothing comes twice, and the
// header's indicator says "Reconnecting…" meanwhile.
import { useEffect, useRef, useState } from '../vendor/preact-htm.js';
import { api, handleAuthError } from './session.js';

const RETRY_MS = [500, 1000, 2000, 4000, 5000];
const streams = new Set(); // every open stream, for the indicator
const indicatorListeners = new Set();

/** 'live' | 'reconnecting' | 'offline' over every open stream. */
export function connectionState() {
  if (typeof navigator !== 'undefined' && navigator.onLine === false) return 'offline';
  for (const stream of streams) if (stream.state === 'reconnecting') return 'reconnecting';
  return 'live';
}

function indicatorChanged() {
  const state = connectionState();
  for (const listener of indicatorListeners) listener(state);
}
window.addEventListener('online', indicatorChanged);
window.addEventListener('offline', indicatorChanged);

/** The indicator's state, re-rendered when it changes. */
export function useConnectionState() {
  const [state, setState] = useState(connectionState);
  useEffect(() => {
    indicatorListeners.add(setState);
    setState(connectionState());
    return () => indicatorListeners.delete(setState);
  }, []);
  return state;
}

/**
 * Streams event records matching {types, executionId} to `onEvent`, from after `since`
 * (an event id) or, without one, from now on. Reconnects after a drop from the last
 * event seen. `onResync` is called after a reconnect that could not resume from there
 * (its event was pruned): the caller should reload what it shows.
 * @returns {{close: () => void}}
 */
export function liveEvents({ types, executionId, since } = {}, onEvent, { onResync, onState } = {}) {
  const stream = { state: 'connecting', closed: false, socket: null, timer: null };
  let last = since ?? null;
  let failures = 0;
  streams.add(stream);

  const setState = (state) => {
    if (stream.state === state) return;
    stream.state = state;
    onState?.(state);
    indicatorChanged();
  };

  const newest = async () => {
    // Without a starting point, begin after the newest matching event: what happens
    // between this call and the socket's opening is then replayed, not lost.
    const page = await api().listEvents({ executionId, limit: 1 });
    return page.events[0]?.event_id ?? null;
  };

  const open = async () => {
    if (stream.closed || !api()) return;
    try {
      if (last === null) last = await newest();
    } catch {
      retry();
      return;
    }
    if (stream.closed) return;
    const socket = api().subscribeToEvents({ types, executionId, since: last ?? undefined });
    stream.socket = socket;
    socket.onopen = () => {
      failures = 0;
      setState('live');
    };
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event && event.event_id) last = event.event_id;
      onEvent(event);
    };
    socket.onclose = (event) => {
      if (stream.closed || event.byClient) return;
      if (handleAuthError(socket.error)) {
        // The token stopped being accepted (the upgrade was refused with 401): retrying
        // cannot help; the reader signs in again and comes back here.
        stream.closed = true;
        streams.delete(stream);
        indicatorChanged();
        return;
      }
      if (event.code === 4404) {
        // The event we would resume after is gone (retention): start from now, and let
        // the page reload what it shows.
        last = null;
        onResync?.();
      }
      retry();
    };
  };

  const retry = () => {
    if (stream.closed) return;
    setState('reconnecting');
    const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
    failures += 1;
    stream.timer = setTimeout(open, wait);
  };

  open();
  return {
    close() {
      stream.closed = true;
      clearTimeout(stream.timer);
      stream.socket?.close();
      streams.delete(stream);
      indicatorChanged();
    },
  };
}

/**
 * A live stream for the life of a component. `onEvent` may change between renders (the
 * latest one is called); the stream reopens only when `key` changes.
 */
export function useLiveEvents(options, onEvent, key, handlers = {}) {
  const latest = useRef({ onEvent, handlers });
  latest.current = { onEvent, handlers };
  useEffect(() => {
    if (options === null) return undefined;
    const stream = liveEvents(options, (event) => latest.current.onEvent(event), {
      onResync: () => latest.current.handlers.onResync?.(),
      onState: (state) => latest.current.handlers.onState?.(state),
    });
    return () => stream.close();
  }, [key]);
}

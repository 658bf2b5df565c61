import assert from 'node:assert/strict';
import { test } from 'node:test';

import { asText, duration, elapsedMs, relativeTime, timeOf } from '../../../synthesis/ui/app/logic/format.js';

test('relative times read as people say them', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  assert.equal(relativeTime('2026-01-01T11:59:58Z', now), 'just now');
  assert.equal(relativeTime('2026-01-01T11:59:30Z', now), '30 seconds ago');
  assert.equal(relativeTime('2026-01-01T11:57:00Z', now), '3 minutes ago');
  assert.equal(relativeTime('2026-01-01T11:00:00Z', now), '1 hour ago');
  assert.equal(relativeTime('2025-12-30T12:00:00Z', now), '2 days ago');
  assert.equal(relativeTime('2026-01-01T14:00:00Z', now), 'in 2 hours');
  assert.equal(relativeTime(null, now), '');
  assert.equal(relativeTime('not a date', now), '');
});

test('durations are short and readable', () => {
  assert.equal(duration(850), '850 ms');
  assert.equal(duration(1234), '1.2 s');
  assert.equal(duration(42_000), '42 s');
  assert.equal(duration(185_000), '3 min 5 s');
  assert.equal(duration(7_440_000), '2 h 4 min');
  assert.equal(duration(null), '');
  assert.equal(duration(-1), '');
});

test('values become text, never markup', () => {
  assert.equal(asText('<b>x</b>'), '<b>x</b>');
  assert.equal(asText({ a: 1 }), '{\n  "a": 1\n}');
  assert.equal(asText(null), '');
});

test('how long something ran: start to end, or to now while it runs', () => {
  const now = Date.parse('2026-01-01T12:00:10Z');
  assert.equal(elapsedMs('2026-01-01T12:00:00Z', '2026-01-01T12:00:02.500Z', now), 2500);
  assert.equal(elapsedMs('2026-01-01T12:00:00Z', '2026-01-01T12:00:02.500Z'), 2500, 'no clock needed once ended');
  assert.equal(elapsedMs('2026-01-01T12:00:00Z', null, now), 10_000);
  assert.equal(elapsedMs('2026-01-01T12:00:00Z', null), null, 'running, and no clock given');
  assert.equal(elapsedMs(null, null, now), null, 'never started');
  assert.equal(elapsedMs('2026-01-01T12:00:20Z', null, now), 0, 'a clock behind the server never goes negative');
  assert.equal(timeOf('2026-01-01T12:00:10Z'), now);
  assert.equal(timeOf('nonsense'), null);
  assert.equal(timeOf(''), null);
});

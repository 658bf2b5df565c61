import assert from 'node:assert/strict';
import { test } from 'node:test';

import { coalesce } from '../../../synthesis/ui/app/logic/coalesce.js';

/** A clock the test moves by hand. */
function fakeClock() {
  let now = 0;
  let next = 1;
  const timers = new Map();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = next++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(id) {
      timers.delete(id);
    },
    pending: () => timers.size,
    /** Moves time on by `ms`, running what falls due (and letting promises settle). */
    async advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
        await new Promise((resolve) => setImmediate(resolve));
      }
      now = until;
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

test('a burst of requests runs the task once at once, then once more after the interval', async () => {
  const clock = fakeClock();
  let runs = 0;
  const c = coalesce(() => {
    runs += 1;
  }, 300, clock);
  c.request();
  await clock.advance(0);
  assert.equal(runs, 1);
  for (let i = 0; i < 50; i += 1) c.request();
  await clock.advance(100);
  assert.equal(runs, 1, 'not again within the interval');
  await clock.advance(200);
  assert.equal(runs, 2, 'the burst is one run');
  await clock.advance(1000);
  assert.equal(runs, 2, 'nothing without a request');
});

test('a request during a run is not lost, and runs never overlap', async () => {
  const clock = fakeClock();
  let running = 0;
  let most = 0;
  let runs = 0;
  let finish;
  const c = coalesce(async () => {
    runs += 1;
    running += 1;
    most = Math.max(most, running);
    await new Promise((resolve) => {
      finish = resolve;
    });
    running -= 1;
  }, 100, clock);
  c.request();
  await clock.advance(0);
  assert.equal(runs, 1);
  c.request(); // while it runs
  await clock.advance(500);
  assert.equal(runs, 1, 'waits for the run to end');
  finish();
  await clock.advance(0);
  await clock.advance(100);
  assert.equal(runs, 2, 'the request made during the run ran after it');
  finish();
  await clock.advance(0);
  assert.equal(most, 1);
});

test('a failing task does not stop later runs; cancel stops everything', async () => {
  const clock = fakeClock();
  let runs = 0;
  const c = coalesce(() => {
    runs += 1;
    throw new Error('boom');
  }, 50, clock);
  c.request();
  await clock.advance(0);
  c.request();
  await clock.advance(50);
  assert.equal(runs, 2);
  c.request();
  c.cancel();
  await clock.advance(1000);
  assert.equal(runs, 2);
  assert.equal(clock.pending(), 0);
  c.request();
  assert.equal(clock.pending(), 0, 'a cancelled coalescer schedules nothing');
});

test('the interval may be a function, read at each request (bigger work, longer spacing)', async () => {
  const clock = fakeClock();
  let runs = 0;
  let spacing = 100;
  const c = coalesce(() => {
    runs += 1;
  }, () => spacing, clock);
  c.request();
  await clock.advance(0);
  spacing = 1000;
  c.request();
  await clock.advance(500);
  assert.equal(runs, 1, 'the spacing asked for at the request holds');
  await clock.advance(500);
  assert.equal(runs, 2);
});

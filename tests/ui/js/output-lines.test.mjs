import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LineIndex, MARKER, displayText, storedText } from '../../../synthesis/ui/app/logic/output-lines.js';

test('chunks split mid-line join into whole lines', () => {
  const lines = new LineIndex();
  lines.append('first li');
  assert.deepEqual(lines.texts, ['first li']);
  assert.ok(lines.isOpen(0));
  lines.append('ne\nsecond\nthi');
  lines.append('rd');
  lines.append('\n');
  assert.deepEqual(lines.texts, ['first line', 'second', 'third']);
  assert.deepEqual(lines.openLines(), []);
  lines.append('\n\n');
  assert.deepEqual(lines.texts, ['first line', 'second', 'third', '', '']);
  assert.equal(lines.maxLength, 10);
});

test('stdout and stderr keep their own unfinished line', () => {
  const lines = new LineIndex();
  lines.append('compiling ', 'stdout');
  lines.append('warning: x\n', 'stderr');
  lines.append('done\n', 'stdout');
  assert.deepEqual(lines.texts, ['compiling done', 'warning: x']);
  assert.deepEqual(lines.kinds, ['stdout', 'stderr']);
});

test('the truncation marker is a line of its own', () => {
  const lines = new LineIndex();
  lines.append('partial', 'stdout');
  lines.append('\n[output truncated: stdout beyond 10 bytes is not sent live]\n', 'stdout', { truncated: true });
  lines.append('after', 'stdout');
  assert.deepEqual(lines.texts, ['partial', '[output truncated: stdout beyond 10 bytes is not sent live]', 'after']);
  assert.equal(lines.kinds[1], MARKER);
});

test('10,000 lines in many small chunks are indexed quickly and exactly', () => {
  const text = Array.from({ length: 10000 }, (_, i) => `${i + 1}`).join('\n') + '\n';
  const lines = new LineIndex();
  const started = performance.now();
  for (let at = 0; at < text.length; at += 777) lines.append(text.slice(at, at + 777));
  const took = performance.now() - started;
  assert.equal(lines.length, 10000);
  assert.equal(lines.texts[9999], '10000');
  assert.equal(lines.texts[4321], '4322');
  assert.ok(took < 1000, `took ${took.toFixed(1)} ms`);
});

test('stored output: JSON is indented, errors are stderr lines', () => {
  assert.equal(storedText('[1,2]'), '[\n  1,\n  2\n]');
  assert.equal(storedText('plain [x'), 'plain [x');
  assert.equal(storedText('[not json'), '[not json');
  assert.equal(storedText({ a: 1 }), '{\n  "a": 1\n}');
  const lines = LineIndex.fromStored('no newline at end', 'oops');
  assert.deepEqual(lines.texts, ['no newline at end', 'oops']);
  assert.deepEqual(lines.kinds, ['stdout', 'stderr']);
});

test('a carriage return starts the line over, as in a terminal', () => {
  assert.equal(displayText('10%\r50%\r100%'), '100%');
  assert.equal(displayText('windows\r'), 'windows');
  assert.equal(displayText('<img src=x onerror=alert(1)>'), '<img src=x onerror=alert(1)>');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LineIndex } from '../../../synthesis/ui/app/logic/output-lines.js';
import { FIRST_MATCHES, makeMatcher, searchLines, splitMatches } from '../../../synthesis/ui/app/logic/output-search.js';

test('plain text is case-insensitive; a bad regex says why', () => {
  const m = makeMatcher('ERROR');
  assert.ok(m.test('an error here'));
  assert.ok(!m.test('fine'));
  assert.ok(makeMatcher('err(or)?\\b', { regex: true }).test('Error: x'));
  const bad = makeMatcher('(', { regex: true });
  assert.match(bad.error, /Not a valid regular expression/);
  assert.ok(!bad.test('('));
  assert.ok(makeMatcher('').empty);
  // A plain query is not a pattern.
  assert.ok(makeMatcher('a.b').test('a.b') && !makeMatcher('a.b').test('axb'));
});

test('matches are cut out for marking, as text', () => {
  assert.deepEqual(splitMatches('an Error and error', makeMatcher('error')), [
    { text: 'an ', match: false },
    { text: 'Error', match: true },
    { text: ' and ', match: false },
    { text: 'error', match: true },
  ]);
  assert.deepEqual(splitMatches('aaa', makeMatcher('x*', { regex: true })), [{ text: 'aaa', match: false }]);
});

test('search continues where it stopped, and looks again at lines still open', () => {
  const lines = new LineIndex();
  const matcher = makeMatcher('fail');
  lines.append('ok\nfai');
  let result = searchLines(lines, matcher, null);
  assert.equal(result.count, 0);
  lines.append('led\nfailed again\n');
  result = searchLines(lines, matcher, result.state);
  assert.equal(result.count, 2);
  assert.deepEqual(result.first, [1, 2]);
  assert.equal(result.state.scanned, 3);
  // An open line counts while it matches, without being counted twice later.
  lines.append('fail', 'stdout');
  result = searchLines(lines, matcher, result.state);
  assert.equal(result.count, 3);
  lines.append('ure\n', 'stdout');
  result = searchLines(lines, matcher, result.state);
  assert.equal(result.count, 3);
  assert.deepEqual(result.first, [1, 2, 3]);
});

test('an anchored regex on an open line is judged on the whole line', () => {
  const lines = new LineIndex();
  const matcher = makeMatcher('^done$', { regex: true });
  lines.append('done');
  let result = searchLines(lines, matcher, null);
  assert.equal(result.count, 1);
  lines.append(' not quite\n');
  result = searchLines(lines, matcher, result.state);
  assert.equal(result.count, 0);
});

test('the count covers every match, the list only the first few', () => {
  const lines = new LineIndex();
  lines.append(Array.from({ length: 10000 }, (_, i) => `line ${i} ${i % 100 === 0 ? 'hit' : ''}`).join('\n') + '\n');
  const started = performance.now();
  const result = searchLines(lines, makeMatcher('HIT'), null);
  assert.ok(performance.now() - started < 1000, "searching 10,000 lines takes well under a second");
  assert.equal(result.count, 100);
  assert.equal(result.first.length, FIRST_MATCHES);
  assert.deepEqual(result.first, [0, 100, 200, 300, 400]);
  // A new matcher starts over.
  assert.equal(searchLines(lines, makeMatcher('line 9999'), result.state).count, 1);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { count, lastPage, PAGE_SIZE, pageOffset, parsePage, rangeText, totalText } from '../../../synthesis/ui/app/logic/paging.js';

test('a page number comes from the URL, anything odd is page 1', () => {
  assert.equal(parsePage('3'), 3);
  assert.equal(parsePage(' 12 '), 12);
  for (const bad of [null, undefined, '', '0', '-2', '1.5', 'abc', '1e3', '9999999999999']) {
    assert.equal(parsePage(bad), 1, String(bad));
  }
});

test('pages map to offsets of 50 rows', () => {
  assert.equal(PAGE_SIZE, 50);
  assert.equal(pageOffset(1), 0);
  assert.equal(pageOffset(3), 100);
  assert.equal(pageOffset(2, 20), 20);
  assert.equal(lastPage(0), 1);
  assert.equal(lastPage(50), 1);
  assert.equal(lastPage(51), 2);
  assert.equal(lastPage(1234), 25);
});

test('the range says which rows of how many', () => {
  assert.equal(rangeText(0, 50, 1234), '1–50 of 1,234');
  assert.equal(rangeText(1200, 34, 1234), '1,201–1,234 of 1,234');
  assert.equal(rangeText(0, 1, 1), '1–1 of 1');
  assert.equal(rangeText(0, 0, 0), '0 of 0');
  assert.equal(rangeText(100, 0, 20), '0 of 20');
  assert.equal(count(1234567), '1,234,567');
});

test('a total the server only counted so far reads as a lower bound', () => {
  assert.equal(totalText({ total: 10001, total_exact: false }), '10,001+');
  assert.equal(totalText({ total: 42, total_exact: true }), '42');
  assert.equal(totalText({ total: 42 }), '42');
  assert.equal(rangeText(0, 50, 10001, false), '1–50 of 10,001+');
});

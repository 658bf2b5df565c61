// Paging of the list pages: the page number in the URL, the API's offset, "1–50 of 1,234".
// Pure: no browser globals.

export const PAGE_SIZE = 50;

/** The page number a query value names: a whole number from 1; anything else is page 1. */
export function parsePage(value) {
  const text = String(value ?? '').trim();
  if (!/^\d{1,9}$/.test(text)) return 1;
  return Math.max(1, Number(text));
}

/** The API's offset of `page` (from 1). */
export function pageOffset(page, size = PAGE_SIZE) {
  return (page - 1) * size;
}

/** The last page that holds anything (1 when nothing does). */
export function lastPage(total, size = PAGE_SIZE) {
  return Math.max(1, Math.ceil(total / size));
}

/** 1234 -> "1,234" (the same in every locale, so tests and screenshots agree). */
export function count(n) {
  return Number(n).toLocaleString('en-US');
}

/** A list answer's total as text: "10,001+" when the server only counted that far
 * (`total_exact: false`, docs/architecture.md "Lists"). */
export function totalText(answer) {
  return `${count(answer.total)}${answer.total_exact === false ? '+' : ''}`;
}

/**
 * What a page shows: "1–50 of 1,234", "51–51 of 51", "0 of 0".
 * @param {number} offset the first row's offset
 * @param {number} shown the rows on this page
 * @param {number} total the rows of every page
 */
export function rangeText(offset, shown, total, exact = true) {
  const all = `${count(total)}${exact === false ? '+' : ''}`;
  if (!shown) return `0 of ${all}`;
  return `${count(offset + 1)}–${count(offset + shown)} of ${all}`;
}

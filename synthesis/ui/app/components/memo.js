// A component drawn again only when its props change (preact/compat's `memo`, which the
// vendored standalone build lacks): for the heavy parts of a page that redraws often.
import { Component, h } from '../../vendor/preact-htm.js';

/**
 * Props alike when each is the same value, or an array of the same values (a list built
 * again from unchanged records).
 */
function sameProps(a, b) {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => {
    const x = a[key];
    const y = b[key];
    if (Object.is(x, y)) return true;
    return Array.isArray(x) && Array.isArray(y) && x.length === y.length && x.every((v, i) => Object.is(v, y[i]));
  });
}

/**
 * `render` (a function component, hooks and all) wrapped to skip redraws with alike props;
 * its own state changes still redraw it.
 * @template P
 * @param {(props: P) => unknown} render
 */
export function memo(render) {
  class Memo extends Component {
    shouldComponentUpdate(next) {
      return !sameProps(this.props, next);
    }

    render(props) {
      return h(render, props);
    }
  }
  Memo.displayName = `Memo(${render.name || 'component'})`;
  return Memo;
}

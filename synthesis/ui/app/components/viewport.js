// What the virtualized views share: the height of their scrolling box, kept current.
import { useLayoutEffect } from '../../vendor/preact-htm.js';

/**
 * Keeps `view.height` (a `{top, height}` state set by `setView`) equal to the scrolling
 * box's height, measured now and whenever the box is resized.
 */
export function useViewportHeight(scroller, setView) {
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return undefined;
    const measure = () => setView((v) => (v.height === el.clientHeight ? v : { ...v, height: el.clientHeight }));
    measure();
    if (typeof ResizeObserver === 'undefined') return undefined;
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
}

// Lays out big blocks of steps off the main thread, so a plan of thousands of steps never
// freezes the tab while its graph is computed. Messages: {key, nodes} -> {key, layout}.
import { layoutGraph } from './logic/graph-layout.js';

self.onmessage = (message) => {
  const { key, nodes } = message.data || {};
  try {
    self.postMessage({ key, layout: layoutGraph(Array.isArray(nodes) ? nodes : []) });
  } catch (error) {
    self.postMessage({ key, error: String(error?.message || error) });
  }
};

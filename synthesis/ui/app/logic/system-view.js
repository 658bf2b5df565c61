// The system page's figures as readable rows. Pure: no browser globals.
import { duration } from './format.js';
import { count } from './paging.js';

/** "45 s", "3 h 4 min", "2 d 5 h": how long a server has been up. */
export function uptimeText(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  const days = Math.floor(seconds / 86400);
  if (days < 1) return duration(seconds * 1000);
  const hours = Math.floor((seconds - days * 86400) / 3600);
  return hours ? `${days} d ${hours} h` : `${days} d`;
}

/** "execution_engine" -> "execution engine". */
export function label(key) {
  return String(key).replace(/_/g, ' ');
}

/** A metric in milliseconds as a duration; 0 (nothing measured yet) as "—". */
function ms(value) {
  return Number.isFinite(value) && value > 0 ? duration(value) : '—';
}

function number(value) {
  return Number.isFinite(value) ? count(value) : '—';
}

/**
 * The metrics as titled groups of [label, text] rows. The counts are shown as the server
 * sends them (a newer server's extra counts too); durations and resources by name.
 * @param {import('../../client.js').Metrics} metrics
 * @returns {{title: string, rows: [string, string][]}[]}
 */
export function metricGroups(metrics) {
  const m = metrics ?? {};
  const groups = [
    {
      title: 'Executions',
      rows: Object.entries(m.executions ?? {}).map(([key, value]) => [label(key), number(value)]),
    },
    {
      title: 'Steps',
      rows: Object.entries(m.steps ?? {}).map(([key, value]) => [label(key), number(value)]),
    },
    {
      title: 'Durations',
      rows: [
        ['p95 execution', ms(m.performance?.p95_execution_time_ms)],
        ['average execution', ms(m.performance?.average_execution_time_ms)],
        ['p95 step', ms(m.performance?.p95_step_time_ms)],
        ['average step', ms(m.performance?.average_step_time_ms)],
      ],
    },
    {
      title: 'Resources',
      rows: [
        ['memory', Number.isFinite(m.resource_usage?.memory_mb) ? `${m.resource_usage.memory_mb.toFixed(1)} MB` : '—'],
        ['CPU', Number.isFinite(m.resource_usage?.cpu_percent) ? `${m.resource_usage.cpu_percent.toFixed(1)} %` : '—'],
      ],
    },
    {
      title: 'Cluster',
      rows: Object.entries(m.cluster ?? {}).map(([key, value]) => [label(key), number(value)]),
    },
  ];
  return groups.filter((group) => group.rows.length);
}

// Human-readable numbers for the view.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** bytes formats a byte count: 512 B, 1.5 KiB, 20 MiB. */
export function bytes(n) {
  n = Number(n) || 0;
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
  return (i === 0 || n >= 10 ? Math.round(n) : n.toFixed(1)) + ' ' + UNITS[i];
}

/** rate formats bytes per second. */
export function rate(n) { return bytes(n) + '/s'; }

/** seconds formats a short duration given in seconds: 250 µs, 1.2 ms, 3.4 s. */
export function seconds(s) {
  if (s < 0.001) return Math.round(s * 1e6) + ' µs';
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms';
  return s.toFixed(1) + ' s';
}

/** age formats how long ago a time was: 5 s, 3 min, 2 h, 4 d. */
export function age(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  if (s < 86400) return Math.floor(s / 3600) + ' h';
  return Math.floor(s / 86400) + ' d';
}

// Numbers as people read them: the same rules as models_admin/templatetags/models_admin.py.

const UNITS = ["B", "KB", "MB", "GB", "TB"];

/** Decimal units, as `ollama list` shows sizes: 2019393189 -> "2.0 GB". */
export function formatBytes(value) {
  let size = Number(value) || 0;
  let unit = 0;
  while (size >= 1000 && unit < UNITS.length - 1) {
    size /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${Math.floor(size)} B` : `${size.toFixed(1)} ${UNITS[unit]}`;
}

/** Time left as "2 h 5 min", "4 min 59 s", "12 s". */
export function formatSeconds(total) {
  const seconds = Math.max(0, Math.round(total));
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const secs = seconds % 60;
  if (hours >= 24) return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${secs} s`;
  return `${secs} s`;
}

/** The countdown to a model's unloading; null seconds means "forever". */
export function formatCountdown(seconds) {
  if (seconds === null) return "forever";
  return seconds <= 0 ? "unloading" : formatSeconds(seconds);
}

// Formatting shared by the bench scripts: Markdown tables, byte counts and durations.

/**
 * Renders a Markdown table. `rows` contains arrays of cell text, and the columns whose indexes are in
 * `rightAligned` are right-aligned (for numbers). A `|` inside a cell is escaped.
 */
export function markdownTable(headers, rows, rightAligned = []) {
  const escape = (cell) => String(cell).replaceAll('|', '\\|');
  const line = (cells) => `| ${cells.map(escape).join(' | ')} |`;
  const rule = headers.map((_, index) => (rightAligned.includes(index) ? '---:' : '---'));
  return [line(headers), `| ${rule.join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** Formats a byte count with thousands separators, such as `1,150,987`. */
export function formatBytes(bytes) {
  return bytes.toLocaleString('en-US');
}

/** Formats a byte count in binary units, such as `1.10 MiB`, for totals. */
export function formatBinary(bytes) {
  if (bytes < 1024) {
    return `${bytes} B`;
  }
  if (bytes < 1024 * 1024) {
    return `${(bytes / 1024).toFixed(1)} KiB`;
  }
  return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
}

/** Formats a duration in milliseconds: `123.4 ms` below one second, `2.35 s` from one second. */
export function formatMillis(millis) {
  if (millis === null || millis === undefined || Number.isNaN(millis)) {
    return 'n/a';
  }
  return millis < 1000 ? `${millis.toFixed(1)} ms` : `${(millis / 1000).toFixed(2)} s`;
}

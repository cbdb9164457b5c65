/**
 * How a model download shows its progress: a bar redrawn in place on a terminal (percent,
 * MB of MB, speed, time left; at most ten redraws a second), or, in a log (a service, a
 * pipe), one plain line per tenth of the file.
 */

/** Where progress is written: `process.stderr`, or a recorder in tests. */
export interface ProgressWriter {
  /** A terminal: the bar is redrawn in place. Otherwise plain lines. */
  readonly isTTY?: boolean;
  /** A terminal's width: the bar is kept shorter (a wrapped line cannot be redrawn in place). */
  readonly columns?: number;
  write(text: string): unknown;
}

/** What a download tells about its progress (src/llm/model-download.ts). */
export interface DownloadProgress {
  /** The transfer starts, or resumes, at `from` of `total` bytes. */
  start(total: number, from: number): void;
  /** `received` of the total bytes are on disk. */
  update(received: number): void;
  /** The transfer is over (complete or not): a terminal's bar gets its line ending. */
  end(): void;
  /** Write a log line without tearing the bar: it is cleared first and redrawn on the next update. */
  above(print: () => void): void;
}

export const PROGRESS_DEFAULTS = {
  /** A terminal's bar is redrawn at most this often. */
  redrawMs: 100,
  /** The speed is measured over this window. */
  speedWindowMs: 5_000,
  /** Bar width in characters. */
  barWidth: 24,
} as const;

const MB = 1_000_000;

/** `12.3 MB` of a byte count, one decimal. */
export function megabytes(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`;
}

/** A size for a log line: `437.2 MB`, or `1.12 GB` from a gigabyte on. */
export function sizeText(bytes: number): string {
  return bytes >= 1_000_000_000 ? `${(bytes / 1_000_000_000).toFixed(2)} GB` : megabytes(bytes);
}

/** `1:02:03` or `2:03` of a number of seconds. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

/**
 * A progress display for `label` (the file's name) on `writer`. `now` is injectable so the
 * redraw limit and the speed can be tested without waiting.
 */
export function progressDisplay(
  writer: ProgressWriter,
  label: string,
  options: { now?: () => number; redrawMs?: number } = {},
): DownloadProgress {
  const now = options.now ?? Date.now;
  const redrawMs = options.redrawMs ?? PROGRESS_DEFAULTS.redrawMs;
  const tty = writer.isTTY === true;
  let total = 0;
  let received = 0;
  let lastDraw = Number.NEGATIVE_INFINITY;
  /** A bar is on the current line (a terminal), to be cleared before anything else is written. */
  let drawn = false;
  /** The byte count the bar on the line shows. */
  let shown = -1;
  /** The last tenth written as a line (plain output). */
  let tenth = -1;
  let samples: { t: number; bytes: number }[] = [];

  const speed = (): number => {
    const first = samples[0];
    const last = samples[samples.length - 1];
    if (first === undefined || last === undefined || last.t <= first.t) return 0;
    return ((last.bytes - first.bytes) / (last.t - first.t)) * 1000;
  };
  const percent = () => (total > 0 ? Math.floor((received / total) * 100) : 100);

  const bar = (): string => {
    const width = PROGRESS_DEFAULTS.barWidth;
    const filled = total > 0 ? Math.min(width, Math.floor((received / total) * width)) : width;
    const rate = speed();
    const eta = rate > 0 ? ` ETA ${clock((total - received) / rate)}` : "";
    const rest =
      ` [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(percent()).padStart(3)}% ` +
      `${(received / MB).toFixed(1)}/${megabytes(total)} ${megabytes(rate)}/s${eta}`;
    // One column short of the width: a line that fills it wraps on some terminals.
    const room = writer.columns === undefined ? label.length : Math.max(8, writer.columns - 1 - rest.length);
    return `${label.length > room ? `${label.slice(0, room - 1)}…` : label}${rest}`;
  };

  const draw = (force: boolean) => {
    const t = now();
    if (!force && t - lastDraw < redrawMs) return;
    lastDraw = t;
    writer.write(`\r${bar()}\x1b[K`);
    drawn = true;
    shown = received;
  };

  const line = () => {
    const current = Math.floor(percent() / 10);
    if (current <= tenth) return;
    tenth = current;
    const rate = speed();
    writer.write(
      `${label}: ${current * 10}% (${(received / MB).toFixed(1)} of ${megabytes(total)}` +
        `${rate > 0 ? `, ${megabytes(rate)}/s` : ""})\n`,
    );
  };

  return {
    start(size, from) {
      total = size;
      received = from;
      samples = [{ t: now(), bytes: from }];
      if (tty) {
        draw(true);
        return;
      }
      tenth = Math.floor(percent() / 10);
      writer.write(
        from > 0
          ? `${label}: resuming at ${percent()}% (${(from / MB).toFixed(1)} of ${megabytes(total)})\n`
          : `${label}: 0% of ${megabytes(total)}\n`,
      );
    },
    update(bytes) {
      received = bytes;
      const t = now();
      samples.push({ t, bytes });
      while (samples.length > 2 && (samples[0]?.t ?? t) < t - PROGRESS_DEFAULTS.speedWindowMs) samples.shift();
      if (tty) draw(received >= total);
      else line();
    },
    end() {
      if (tty && drawn) {
        if (shown !== received) draw(true);
        writer.write("\n");
        drawn = false;
      }
    },
    above(print) {
      if (tty && drawn) {
        writer.write("\r\x1b[K");
        drawn = false;
        lastDraw = Number.NEGATIVE_INFINITY;
      }
      print();
    },
  };
}

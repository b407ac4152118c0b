/**
 * Structured JSON logging (pino) to stdout, written asynchronously and in
 * batches: lines collect in a buffer (sonic-boom) written when it holds
 * `LOG_BATCH_BYTES`, or after `LOG_FLUSH_MS`, whichever comes first, so the
 * access log costs no write system call per request (NGINX's `access_log ...
 * buffer= flush=`). The buffer is written synchronously when the process exits
 * (pino registers that for asynchronous destinations), so a SIGTERM shutdown,
 * which ends with process.exit, loses no line. A reader that falls far behind
 * loses lines beyond `LOG_MAX_BUFFER` rather than growing memory or blocking
 * requests.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Buffered bytes that trigger a write. */
export const LOG_BATCH_BYTES = 4096;
/** Longest a line waits in the buffer. */
export const LOG_FLUSH_MS = 100;
/** Lines are dropped while this much is buffered and not yet written. */
export const LOG_MAX_BUFFER = 16 * 1024 * 1024;

let lastMs = -1;
let lastTime = '';
/** pino's isoTime, formatted once per millisecond instead of once per line. */
function isoTime(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastTime = `,"time":"${new Date(ms).toISOString()}"`;
  }
  return lastTime;
}

export function createLogger(level: LevelWithSilent = 'info'): Logger {
  const dest = pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES, maxLength: LOG_MAX_BUFFER, periodicFlush: LOG_FLUSH_MS });
  return pino({ level, base: { name: 'sluice' }, timestamp: isoTime }, dest);
}

export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * Command-line parsing for `sluice`: node:util parseArgs (strict) per
 * subcommand, `--help` on every subcommand, and "did you mean" for a
 * mistyped command or option. Usage errors exit 2, as getopt tools do.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type OptionsSpec = NonNullable<ParseArgsConfig['options']>;

export interface CommandSpec {
  name: string;
  /** One line, shown in `sluice --help`. */
  summary: string;
  /** Synopsis line(s) after `usage: `. */
  usage: string;
  /** Extra lines of `sluice NAME --help`: one per option. */
  details: string;
  options: OptionsSpec;
}

/** A mistake in how sluice was called: printed with the usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Levenshtein distance (insert, delete, substitute: 1 each); small strings only. */
export function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The candidate closest to `word`, if close enough to be a typo: at most a
 * third of its length away (at least 1, at most 3), or a prefix of it (git's rule of thumb).
 */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 2 ? 0.5 : distance(word, c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  return bestD <= limit ? best : undefined;
}

export function helpText(spec: CommandSpec): string {
  return `usage: ${spec.usage}\n\n${spec.summary}\n\noptions:\n${spec.details}\n  -h, --help             this help\n`;
}

/**
 * Parses one subcommand's arguments. Returns 'help' for -h/--help (anywhere);
 * throws UsageError for an unknown option (with a suggestion), a missing value
 * or a stray positional argument.
 */
export function parseCommand<T extends OptionsSpec>(
  spec: CommandSpec & { options: T },
  argv: string[],
): ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true }>>['values'] | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  try {
    return parseArgs({ args: argv, options: spec.options, strict: true }).values;
  } catch (err) {
    const e = err as Error & { code?: string };
    if (!e.code?.startsWith('ERR_PARSE_ARGS')) throw err;
    const unknown = /Unknown option '([^']+)'/.exec(e.message)?.[1];
    if (unknown !== undefined) {
      const names = Object.entries(spec.options).flatMap(([long, o]) => [`--${long}`, ...(o.short ? [`-${o.short}`] : [])]);
      const longNames = names.filter((n) => n.startsWith('--'));
      const bare = unknown.split('=')[0]!;
      const hint = suggest(bare, bare.startsWith('--') ? longNames : names);
      throw new UsageError(`sluice ${spec.name}: unknown option '${bare}'${hint ? ` (did you mean ${hint}?)` : ''}`);
    }
    const positional = /Unexpected argument '([^']+)'/.exec(e.message)?.[1];
    if (positional !== undefined) throw new UsageError(`sluice ${spec.name}: unexpected argument '${positional}'`);
    throw new UsageError(`sluice ${spec.name}: ${e.message}`);
  }
}

#!/usr/bin/env node
/** sluice command line: serve, check, explain, demo (see CONTRACT.md). */
import { readFileSync } from 'node:fs';
import { loadPolicyFile, formatIssue } from './policy/load.js';
import { Sluice, PolicyLoadError, ClusterJoinError, summarize } from './main.js';
import { isWorker, parseWorkers, runPrimary, runWorker } from './cluster/workers.js';
import { createLogger, LOG_LEVELS } from './telemetry/log.js';
import { explain, EXPLAIN_OPTIONS } from './explain.js';
import { lintPolicy } from './policy/lint.js';
import { PolicyWatcher } from './policy/watch.js';
import { parseCommand, helpText, suggest, UsageError, type CommandSpec } from './cli/args.js';

const SERVE = {
  name: 'serve',
  summary: 'Runs the proxy; prints "sluice listening on URL admin URL" when ready.',
  usage: 'sluice serve --config FILE [--port N] [--admin-port N] [--log-level LEVEL] [--watch] [--workers N|auto]',
  details: `  -c, --config FILE      policy file (YAML)
  --port N               overrides listen.port (0: ephemeral)
  --admin-port N         overrides admin.port (0: ephemeral)
  --log-level LEVEL      ${LOG_LEVELS.join(' | ')} (default info)
  --watch                reload when the policy file or a file it refers to changes
  --workers N|auto       N processes on one port (auto: one per core; default 1); caps hold across them`,
  options: {
    config: { type: 'string', short: 'c' },
    port: { type: 'string' },
    'admin-port': { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    watch: { type: 'boolean', default: false },
    workers: { type: 'string' },
  },
} as const satisfies CommandSpec;

const CHECK = {
  name: 'check',
  summary: 'Validates a policy: "ok" and a summary (exit 0), or FILE:LINE:COL: message per problem (exit 1); warnings on stderr.',
  usage: 'sluice check --config FILE',
  details: '  -c, --config FILE      policy file (YAML)',
  options: { config: { type: 'string', short: 'c' } },
} as const satisfies CommandSpec;

const EXPLAIN = {
  name: 'explain',
  summary: 'Prints which route, upstream and class a described request would get, and which rule decided.',
  usage: "sluice explain --config FILE [--method M] [--path P] [-H 'Name: value']... [--ip ADDR] [--json]",
  details: `  -c, --config FILE      policy file (YAML)
  --method M             request method (default GET)
  --path P               request path and query (default /)
  -H, --header 'N: v'    a request header; repeat for more
  --ip ADDR              the TCP peer's IPv4 or IPv6 address (default 127.0.0.1)
  --json                 one JSON object instead of text`,
  options: EXPLAIN_OPTIONS,
} as const satisfies CommandSpec;

/** Declared again here (run.ts is imported only when the demo runs, to keep start-up light); keep in step with src/demo/run.ts. */
const DEMO = {
  name: 'demo',
  summary: 'Self-contained demonstration: fragile backend, mixed premium/free load, FIFO vs sluice table and HTML report.',
  usage: 'sluice demo [--duration SECONDS] [--premium-rate N] [--free-rate N] [--no-html]',
  details: `  --duration SECONDS     length of each phase (default 9)
  --premium-rate N       premium requests per second (default 100)
  --free-rate N          free requests per second (default 1100)
  --no-html              no HTML report`,
  options: {
    duration: { type: 'string', default: '9' },
    'no-html': { type: 'boolean', default: false },
    'premium-rate': { type: 'string', default: '100' },
    'free-rate': { type: 'string', default: '1100' },
  },
} as const satisfies CommandSpec;

const COMMANDS: readonly CommandSpec[] = [SERVE, CHECK, EXPLAIN, DEMO];

const USAGE = `usage:
${COMMANDS.map((c) => `  ${c.usage}`).join('\n')}
  sluice --version
  sluice COMMAND --help`;

/** package.json's version: dist/cli.js and src/cli.ts both sit one level below it. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function fail(msg: string, code = 1): never {
  process.stderr.write(`${msg}\n`);
  process.exit(code);
}

function port(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`${name}: expected a port 0-65535, got ${JSON.stringify(v)}`, 2);
  return n;
}

async function serve(argv: string[]): Promise<void> {
  const values = parseCommand(SERVE, argv);
  if (values === 'help') return void process.stdout.write(helpText(SERVE));
  if (!values.config) fail(`serve: --config FILE is required\n${USAGE}`, 2);
  const level = values['log-level'] as (typeof LOG_LEVELS)[number];
  if (!LOG_LEVELS.includes(level)) fail(`--log-level: expected one of ${LOG_LEVELS.join(', ')}`, 2);
  const log = createLogger(level);
  const workers = parseWorkers(values.workers);
  if (workers === undefined) fail(`--workers: expected a count 1-256 or auto, got ${JSON.stringify(values.workers)}`, 2);
  const serveArgs = {
    config: values.config,
    port: port(values.port, '--port'),
    adminPort: port(values['admin-port'], '--admin-port'),
    workers,
    watch: values.watch,
    log,
    fail,
    fmtHost,
  };
  if (isWorker()) return runWorker(serveArgs);
  if (workers > 1) return runPrimary(serveArgs);
  let sluice: Sluice;
  try {
    sluice = await Sluice.fromFile(values.config, {
      port: port(values.port, '--port'),
      adminPort: port(values['admin-port'], '--admin-port'),
      log,
    } as never);
  } catch (err) {
    if (err instanceof PolicyLoadError) fail(err.errors.join('\n'));
    throw err;
  }
  let addrs;
  try {
    addrs = await sluice.start();
  } catch (err) {
    if (err instanceof ClusterJoinError) fail(`sluice: ${err.message}`);
    fail(`cannot listen: ${(err as Error).message}`);
  }
  const admin = addrs.admin!;
  process.stdout.write(
    `sluice listening on ${addrs.listeners[0]!.url} admin http://${fmtHost(admin.host)}:${admin.port}` +
      (addrs.listeners.length > 1 ? ` also ${addrs.listeners.slice(1).map((l) => l.url).join(' ')}` : '') +
      '\n',
  );
  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    sluice.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => void sluice.reload());
  // --watch: the policy file and every file it refers to (src/policy/watch.ts).
  if (values.watch) new PolicyWatcher(sluice);
}

function fmtHost(h: string): string {
  return h.includes(':') ? `[${h}]` : h;
}

async function check(argv: string[]): Promise<void> {
  const values = parseCommand(CHECK, argv);
  if (values === 'help') return void process.stdout.write(helpText(CHECK));
  if (!values.config) fail(`check: --config FILE is required\n${USAGE}`, 2);
  const r = await loadPolicyFile(values.config);
  if (!r.ok) fail(r.issues.map(formatIssue).join('\n'));
  // Warnings: the policy is valid and `ok` stands, but something in it is likely a mistake.
  for (const w of lintPolicy(r.policy)) process.stderr.write(`${values.config}: warning: ${w.message}\n`);
  process.stdout.write(`ok ${values.config}: ${summarize(r.policy)}\n`);
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'check':
      return check(rest);
    case 'explain': {
      const values = parseCommand(EXPLAIN, rest);
      if (values === 'help') return void process.stdout.write(helpText(EXPLAIN));
      return explain(values, fail);
    }
    case 'demo': {
      const values = parseCommand(DEMO, rest);
      if (values === 'help') return void process.stdout.write(helpText(DEMO));
      const { runDemo } = await import('./demo/run.js');
      return runDemo(rest);
    }
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`sluice ${version()}\n`);
      return;
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return;
    case undefined:
      fail(USAGE, 2);
    default: {
      const hint = cmd.startsWith('-')
        ? suggest(cmd, ['--help', '--version'])
        : suggest(cmd, COMMANDS.map((c) => c.name));
      throw new UsageError(`sluice: unknown ${cmd.startsWith('-') ? 'option' : 'command'} '${cmd}'${hint ? ` (did you mean '${hint}'?)` : ''}`);
    }
  }
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) fail(`${err.message}\n${USAGE}`, 2);
  process.stderr.write(`sluice: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

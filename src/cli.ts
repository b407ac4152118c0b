#!/usr/bin/env node
/** sluice command line: serve, check, explain, demo (see CONTRACT.md). */
import { parseArgs } from 'node:util';
import { watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { loadPolicyFile, formatIssue } from './policy/load.js';
import { Sluice, PolicyLoadError, ClusterJoinError, summarize } from './main.js';
import { isWorker, parseWorkers, runPrimary, runWorker } from './cluster/workers.js';
import { createLogger, LOG_LEVELS } from './telemetry/log.js';
import { explain } from './explain.js';

const USAGE = `usage:
  sluice serve --config FILE [--port N] [--admin-port N] [--log-level LEVEL] [--watch] [--workers N|auto]
  sluice check --config FILE
  sluice explain --config FILE [--method M] [--path P] [-H 'Name: value']... [--ip ADDR] [--json]
  sluice demo [--duration SECONDS] [--no-html]`;

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
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string' },
      'admin-port': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      watch: { type: 'boolean', default: false },
      workers: { type: 'string' },
    },
  });
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
    log,
    fail,
    fmtHost,
  };
  if (isWorker()) return runWorker(serveArgs);
  if (workers > 1) {
    if (values.watch) log.warn('--watch is not supported with --workers; use SIGHUP or POST /reload');
    return runPrimary(serveArgs);
  }
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
    `sluice listening on http://${fmtHost(addrs.proxy.host)}:${addrs.proxy.port} admin http://${fmtHost(admin.host)}:${admin.port}\n`,
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
  if (values.watch) watchPolicy(values.config, () => void sluice.reload());
}

/**
 * --watch: reload when the policy file changes. The folder is watched, not the
 * file, because editors replace files (rename) and a file watch would go stale.
 */
function watchPolicy(file: string, reload: () => void): void {
  let timer: NodeJS.Timeout | undefined;
  const name = basename(file);
  watch(dirname(resolve(file)), (_event, changed) => {
    if (changed !== null && changed !== name) return;
    clearTimeout(timer);
    // Editors write in several steps; wait for the burst to settle.
    timer = setTimeout(reload, 150);
  }).unref();
}

function fmtHost(h: string): string {
  return h.includes(':') ? `[${h}]` : h;
}

async function check(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } } });
  if (!values.config) fail(`check: --config FILE is required\n${USAGE}`, 2);
  const r = await loadPolicyFile(values.config);
  if (!r.ok) fail(r.issues.map(formatIssue).join('\n'));
  process.stdout.write(`ok ${values.config}: ${summarize(r.policy)}\n`);
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'check':
      return check(rest);
    case 'explain':
      return explain(rest, fail);
    case 'demo': {
      const { runDemo } = await import('./demo/run.js');
      return runDemo(rest);
    }
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      fail(USAGE, 2);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`sluice: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

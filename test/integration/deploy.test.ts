/**
 * Installing and running sluice as a service: the packed package with
 * production dependencies only, `prepare` without TypeScript, the test set-up
 * script, the container image's build steps (without a Docker daemon) and its
 * HEALTHCHECK, and the systemd unit (systemd-analyze verify).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT, startSluiceFile } from '../helpers/sluice.js';
import { closedPort } from '../helpers/net.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} took longer than ${opts.timeoutMs ?? 240_000} ms\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 240_000);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A copy of the working tree's source files (tracked and new, not ignored): what a clone or `docker build` context holds. */
async function copyOfRepo(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-repo-'));
  const files = (await sh('git', ['ls-files', '-co', '--exclude-standard'])).stdout.split('\n').filter(Boolean);
  assert.ok(files.includes('package.json'), 'git ls-files lists the repository');
  for (const f of files) {
    await mkdir(dirname(join(dir, f)), { recursive: true });
    await copyFile(join(ROOT, f), join(dir, f)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err; // deleted in the working tree, not yet committed
    });
  }
  return dir;
}

test('npm pack → npm install --omit=dev in an empty folder → npx sluice check, --version, serve', async () => {
  const work = await mkdtemp(join(tmpdir(), 'sluice-pack-'));
  try {
    const pack = await sh('npm', ['pack', '--pack-destination', work, '--json'], { timeoutMs: 180_000 });
    assert.equal(pack.code, 0, pack.stderr);
    const [info] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    const paths = info!.files.map((f) => f.path);
    assert.ok(paths.includes('dist/cli.js'));
    assert.ok(paths.includes('policies/default.yaml'));
    assert.ok(!paths.some((p) => p.startsWith('test/') || p.startsWith('src/') || p.endsWith('.map')), 'no sources, tests or source maps');
    const app = join(work, 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), '{ "name": "consumer", "private": true }\n');
    const inst = await sh('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', join(work, info!.filename)], { cwd: app, timeoutMs: 240_000 });
    assert.equal(inst.code, 0, inst.stderr);
    const mods = await readdir(join(app, 'node_modules'));
    for (const dev of ['typescript', 'tsx', 'playwright-core']) assert.ok(!mods.includes(dev), `${dev} is not installed`);
    const check = await sh('npx', ['--no-install', 'sluice', 'check', '--config', join(app, 'node_modules', 'sluice', 'policies', 'default.yaml')], { cwd: app });
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /^ok .*default\.yaml: 1 upstream\(s\)/);
    const v = await sh('npx', ['--no-install', 'sluice', '--version'], { cwd: app });
    assert.match(v.stdout, /^sluice \d+\.\d+\.\d+/);
    // The installed copy serves, and its dashboard finds chart.js among the production dependencies.
    const policy = join(work, 'p.yaml');
    await writeFile(policy, `upstreams:\n  - name: a\n    targets: [http://127.0.0.1:${await closedPort()}]\nroutes:\n  - upstream: a\n`);
    const cli = join(app, 'node_modules', 'sluice', 'dist', 'cli.js');
    const served = spawn(process.execPath, [cli, 'serve', '--config', policy, '--port', '0', '--admin-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const admin = await new Promise<string>((resolve, reject) => {
        let out = '';
        served.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          const m = / admin (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        served.once('exit', (c) => reject(new Error(`exited ${c}: ${out}`)));
      });
      const js = await fetch(`${admin}/dashboard/chart.js`);
      assert.equal(js.status, 200);
      assert.match(await js.text(), /Chart/);
      assert.equal((await fetch(`${admin}/readyz`)).status, 200);
    } finally {
      served.kill('SIGTERM');
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('npm ci --omit=dev in a clone: prepare has no TypeScript, says how to build in one line, and the install succeeds', async () => {
  const repo = await copyOfRepo();
  try {
    const r = await sh('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: repo, timeoutMs: 300_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.doesNotMatch(r.stdout + r.stderr, /tsc: not found/);
    const said = (r.stdout + r.stderr).split('\n').filter((l) => l.startsWith('sluice prepare:'));
    assert.equal(said.length, 1, r.stdout);
    assert.match(said[0]!, /TypeScript not installed .*run `npm ci && npm run build`/);
    assert.ok(!(await readdir(join(repo, 'node_modules'))).includes('typescript'));
  } finally {
    await rm(repo, { recursive: true, force: true });
  }
});

test('test set-up: finds every tool here; where one is missing and it cannot install, stops at once with the command, in one line', async () => {
  const ok = await sh('bash', [join(ROOT, 'scripts', 'test-setup.sh')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^test-setup: found redis-server, .*chromium/);
  assert.equal(ok.stdout.trim().split('\n').length, 1);
  // A PATH with only what the script itself needs: every tool looks missing.
  const bin = await mkdtemp(join(tmpdir(), 'sluice-bin-'));
  try {
    for (const tool of ['bash', 'id', 'mktemp', 'tail', 'rm']) {
      const which = (await sh('bash', ['-c', `command -v ${tool}`])).stdout.trim();
      await symlink(which, join(bin, tool));
    }
    const started = Date.now();
    const r = await sh(join(bin, 'bash'), [join(ROOT, 'scripts', 'test-setup.sh')], {
      env: { PATH: bin, SLUICE_TEST_SETUP_NO_INSTALL: '1', HOME: tmpdir() },
    });
    assert.equal(r.code, 1);
    assert.ok(Date.now() - started < 10_000, 'stops at once');
    const out = r.stderr.trim().split('\n');
    assert.equal(out.length, 1, r.stderr);
    assert.match(out[0]!, /^test-setup: missing redis-server nghttp2-client slowhttptest curl openssl chromium wrk systemd; run: .*apt-get update && apt-get install -y redis-server nghttp2-client/);
  } finally {
    await rm(bin, { recursive: true, force: true });
  }
});

test('container image: multi-stage, node:20 slim, non-root, HEALTHCHECK on /readyz, exec-form node entrypoint; its build steps run here and the result serves', async () => {
  const df = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
  const from = df.split('\n').filter((l) => /^FROM /.test(l));
  assert.equal(from.length, 2, 'two stages');
  for (const f of from) assert.match(f, /^FROM node:20(\.\d+)*-[a-z]+-slim\b/);
  assert.match(df, /^USER node$/m);
  assert.match(df, /^STOPSIGNAL SIGTERM$/m);
  assert.match(df, /^ENTRYPOINT \["node", /m, 'exec form: node is PID 1 and gets SIGTERM itself');
  const hc = /^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])$/m.exec(df);
  assert.ok(hc, 'HEALTHCHECK in exec form');
  const hcCmd = JSON.parse(hc[1]!) as string[];
  assert.match(hcCmd.join(' '), /\/readyz/);
  assert.match(df, /RUN sh deploy\/image-build\.sh \/src \/out/);

  const repo = await copyOfRepo();
  const out = await mkdtemp(join(tmpdir(), 'sluice-image-'));
  try {
    const b = await sh('sh', [join(repo, 'deploy', 'image-build.sh'), repo, out], { timeoutMs: 420_000 });
    assert.equal(b.code, 0, b.stderr);
    const mods = await readdir(join(out, 'node_modules'));
    assert.ok(mods.includes('http2-proxy') && mods.includes('chart.js'));
    assert.ok(!mods.includes('typescript'), 'no dev dependencies in the runtime stage');
    const check = await sh(process.execPath, [join(out, 'dist', 'cli.js'), 'check', '--config', join(ROOT, 'deploy', 'container-policy.yaml')]);
    assert.equal(check.code, 0, check.stderr);
    // The HEALTHCHECK command against a running sluice (admin port via SLUICE_ADMIN_PORT), then against nothing.
    const policy = join(out, 'p.yaml');
    await writeFile(policy, `upstreams:\n  - name: a\n    targets: [http://127.0.0.1:${await closedPort()}]\nroutes:\n  - upstream: a\n`);
    const s = await startSluiceFile(policy);
    try {
      const port = new URL(s.admin).port;
      const healthy = await sh(process.execPath, hcCmd.slice(1), { env: { ...process.env, SLUICE_ADMIN_PORT: port } });
      assert.equal(healthy.code, 0, healthy.stderr);
    } finally {
      await s.stop();
    }
    const down = await sh(process.execPath, hcCmd.slice(1), { env: { ...process.env, SLUICE_ADMIN_PORT: String(await closedPort()) } });
    assert.equal(down.code, 1);
  } finally {
    await rm(repo, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  }
});

test('systemd unit: systemd-analyze verify passes (and fails on a broken copy); reload is SIGHUP; its commands run', async () => {
  const unit = join(ROOT, 'deploy', 'sluice.service');
  const v = await sh('systemd-analyze', ['verify', unit]);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(v.stderr.trim(), '', 'no warnings');
  const text = await readFile(unit, 'utf8');
  assert.match(text, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.match(text, /^KillSignal=SIGTERM$/m);
  assert.match(text, /^User=sluice$/m);
  const dir = await mkdtemp(join(tmpdir(), 'sluice-unit-'));
  try {
    await writeFile(join(dir, 'broken.service'), text.replace('/usr/bin/node /opt', '/usr/bin/no-such-node /opt'));
    const bad = await sh('systemd-analyze', ['verify', join(dir, 'broken.service')]);
    assert.notEqual(bad.code, 0);
    // ExecStartPre and ExecStart with the install prefix replaced by this checkout.
    const cmd = (key: string): string[] =>
      new RegExp(`^${key}=(.*)$`, 'm').exec(text)![1]!.replace('/opt/sluice/node_modules/sluice', ROOT).replace('/etc/sluice/policy.yaml', join(ROOT, 'policies', 'default.yaml')).split(' ');
    const pre = cmd('ExecStartPre');
    const r = await sh(pre[0]!, pre.slice(1));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ok /);
    const start = cmd('ExecStart');
    assert.deepEqual(start.slice(2), ['serve', '--config', join(ROOT, 'policies', 'default.yaml')]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

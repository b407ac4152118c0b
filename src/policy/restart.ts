/**
 * What a reload cannot apply to a running process: the listen and admin
 * addresses (the sockets are bound at start; compare nginx, which re-binds,
 * and Envoy, which needs a listener drain). Each entry says old → new; the
 * reload answer and the log carry them instead of a silent ok.
 * An address fixed by the command line (--port, --admin-port) is not compared.
 */
import type { Policy } from './types.js';

export function restartRequired(old: Policy, next: Policy, overrides: { port?: number | undefined; adminPort?: number | undefined }): string[] {
  const out: string[] = [];
  const fmt = (h: string, p: number): string => `${h.includes(':') ? `[${h}]` : h}:${p}`;
  const portChanged = overrides.port === undefined && old.listen.port !== next.listen.port;
  if (old.listen.host !== next.listen.host || portChanged) {
    out.push(`listen ${fmt(old.listen.host, old.listen.port)} → ${fmt(next.listen.host, next.listen.port)}: needs a restart (still listening on the old address)`);
  }
  const adminPortChanged = overrides.adminPort === undefined && old.admin.port !== next.admin.port;
  if (old.admin.host !== next.admin.host || adminPortChanged) {
    out.push(`admin ${fmt(old.admin.host, old.admin.port)} → ${fmt(next.admin.host, next.admin.port)}: needs a restart (admin still on the old address)`);
  }
  return out;
}

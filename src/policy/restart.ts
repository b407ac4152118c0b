/**
 * What a reload cannot apply to a running process: the listen and admin
 * addresses (the sockets are bound at start; compare nginx, which re-binds,
 * and Envoy, which needs a listener drain). Each entry says old → new; the
 * reload answer and the log carry them instead of a silent ok.
 * A port fixed by the command line (--port, --admin-port) is not compared.
 * Works for one `listen` entry or a list of them.
 */
import type { Policy } from './types.js';

interface Bound {
  host: string;
  port: number;
}

function addresses(l: unknown, portFixed: boolean): string {
  return (Array.isArray(l) ? (l as Bound[]) : [l as Bound])
    .map((e) => `${e.host.includes(':') ? `[${e.host}]` : e.host}:${portFixed ? '*' : e.port}`)
    .join(', ');
}

export function restartRequired(old: Policy, next: Policy, overrides: { port?: number | undefined; adminPort?: number | undefined }): string[] {
  const out: string[] = [];
  const fixed = overrides.port !== undefined;
  const adminFixed = overrides.adminPort !== undefined;
  if (addresses(old.listen, fixed) !== addresses(next.listen, fixed)) {
    out.push(`listen ${addresses(old.listen, false)} → ${addresses(next.listen, false)}: needs a restart (still listening on the old address)`);
  }
  if (addresses(old.admin, adminFixed) !== addresses(next.admin, adminFixed)) {
    out.push(`admin ${addresses(old.admin, false)} → ${addresses(next.admin, false)}: needs a restart (admin still on the old address)`);
  }
  return out;
}

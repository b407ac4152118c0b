/**
 * Upstream clients by protocol: for HTTP/1.1 an undici pool per target (h1.ts),
 * with a node:http keep-alive agent (an https.Agent with the upstream's TLS
 * settings for https:// targets) for the requests undici does not take; for
 * `protocol: h2 | h2c` one HTTP/2 session per target.
 */
import { Agent, request as httpRequest, type ClientRequest, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Target, UpstreamPolicy, UpstreamProtocol } from '../../policy/types.js';
import { tlsConnectOptions } from './tls.js';
import { H2Target } from './h2.js';
import { H1Target, type H1RequestHints } from './h1.js';

export { H2Target } from './h2.js';
export { H1Target, connectsItself, onUpstreamComplete, type H1RequestHints } from './h1.js';
export { describeTlsError } from './tls.js';

/** The keep-alive pool of one target: http.Agent, or https.Agent carrying CA, SNI name, client certificate. */
export function createAgent(target: Target, ka: UpstreamPolicy['keepAlive']): Agent {
  const options = {
    keepAlive: true,
    maxSockets: ka.maxSockets,
    maxFreeSockets: ka.maxFreeSockets,
    // Idle pooled sockets are closed before a typical backend's keep-alive timeout would.
    timeout: ka.idleTimeoutMs,
    scheduling: 'lifo' as const,
  };
  // Agent options override request options (Agent.createSocket), so the SNI name is never taken from a Host header.
  return target.tls ? new HttpsAgent({ ...options, ...tlsConnectOptions(target.tls) }) : new Agent(options);
}

/** The HTTP/2 session holder of a target, for h2/h2c upstreams; undefined for HTTP/1.1. */
export function createH2(target: Target, protocol: UpstreamProtocol, ka: UpstreamPolicy['keepAlive'], connectTimeoutMs: number): H2Target | undefined {
  return protocol === 'http1' ? undefined : new H2Target(target, { idleTimeoutMs: ka.idleTimeoutMs, connectTimeoutMs });
}

/** The undici pool of an HTTP/1.1 target; undefined for h2/h2c. */
export function createH1(target: Target, protocol: UpstreamProtocol, ka: UpstreamPolicy['keepAlive'], connectTimeoutMs: number): H1Target | undefined {
  return protocol === 'http1' ? new H1Target(target, ka, connectTimeoutMs) : undefined;
}

/** Opens the upstream request of one attempt: HTTP/2 stream, or HTTP/1.1 through undici or node:http. */
export function openRequest(
  member: { target: Target; agent: Agent; h1?: H1Target | undefined; h2?: H2Target | undefined },
  options: RequestOptions,
  hints: H1RequestHints,
): ClientRequest {
  if (member.h2) return member.h2.request(options);
  if (member.h1 && H1Target.usesUndici(member.target, options.headers)) {
    const up = member.h1.request(options, hints);
    if (up) return up; // else refused by undici (e.g. `OPTIONS *`): node:http below
  }
  options.agent = member.agent;
  return member.target.tls ? httpsRequest(options) : httpRequest(options);
}

/** Same targets, protocol and TLS settings: pooled connections can be kept across a reload. */
export function sameTransport(a: UpstreamPolicy, b: UpstreamPolicy): boolean {
  return a.protocol === b.protocol && a.targets.every((t, i) => JSON.stringify(t.tls) === JSON.stringify(b.targets[i]?.tls));
}

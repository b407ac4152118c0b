/**
 * Upstream clients by protocol: a keep-alive HTTP/1.1 agent per target (an
 * https.Agent, with the upstream's TLS settings, for https:// targets), or one
 * HTTP/2 session per target for `protocol: h2 | h2c`.
 */
import { Agent, request as httpRequest, type ClientRequest, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Target, UpstreamPolicy, UpstreamProtocol } from '../../policy/types.js';
import { tlsConnectOptions } from './tls.js';
import { H2Target } from './h2.js';

export { H2Target } from './h2.js';
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

/** Opens the upstream request of one attempt: HTTP/2 stream, HTTPS or HTTP request. */
export function openRequest(member: { target: Target; agent: Agent; h2?: H2Target | undefined }, options: RequestOptions): ClientRequest {
  if (member.h2) return member.h2.request(options);
  options.agent = member.agent;
  return member.target.tls ? httpsRequest(options) : httpRequest(options);
}

/** Same targets, protocol and TLS settings: pooled connections can be kept across a reload. */
export function sameTransport(a: UpstreamPolicy, b: UpstreamPolicy): boolean {
  return a.protocol === b.protocol && a.targets.every((t, i) => JSON.stringify(t.tls) === JSON.stringify(b.targets[i]?.tls));
}

/** Shadowing between class matches (src/policy/lint.ts `implies`): first match wins, so an earlier, looser class hides a later one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { implies } from '../../../src/policy/lint.js';

test('a later class is shadowed only when every condition of the earlier one follows from its own', () => {
  const cases: [later: object, first: object, shadowed: boolean][] = [
    [{ pathPrefix: '/api/v1' }, {}, true],
    [{ pathPrefix: '/api/v1' }, { pathPrefix: '/api' }, true],
    [{ pathPrefix: '/api' }, { pathPrefix: '/api/v1' }, false],
    [{}, { pathPrefix: '/api' }, false],
    [{ methods: ['GET'] }, { methods: ['get', 'POST'] }, true],
    [{ methods: ['GET', 'PUT'] }, { methods: ['GET', 'POST'] }, false],
    [{ headers: { 'X-Tier': 'gold' } }, { headers: { 'x-tier': ['gold', 'silver'] } }, true],
    [{ headers: { 'x-tier': ['gold', 'bronze'] } }, { headers: { 'x-tier': ['gold', 'silver'] } }, false],
    [{ cookies: { Plan: 'gold' } }, { cookies: { plan: 'gold' } }, false],
    [{ headers: { 'x-tier': 'gold' } }, { headers: { 'x-tier': { present: true } } }, true],
    [{ headers: { 'x-tier': { regex: '^g' } } }, { headers: { 'x-tier': { present: true } } }, true],
    [{ headers: { 'x-tier': { present: false } } }, { headers: { 'x-tier': { present: true } } }, false],
    [{ headers: { 'x-tier': { present: false } } }, { headers: { 'x-tier': { present: false } } }, true],
    [{ headers: { 'x-tier': { regex: '^g' } } }, { headers: { 'x-tier': { regex: '^g' } } }, true],
    [{ headers: { 'x-tier': { regex: '^go' } } }, { headers: { 'x-tier': { regex: '^g' } } }, false],
    [{ clientIp: ['10.0.0.0/8'], pathPrefix: '/x' }, { clientIp: ['10.0.0.0/8'] }, true],
    [{ host: 'a.example' }, { host: '*.example' }, false],
    [{ jwtClaims: { tier: 'pro' }, query: { a: '1' } }, { jwtClaims: { tier: 'pro' } }, true],
  ];
  for (const [later, first, shadowed] of cases) {
    assert.equal(implies(later, first), shadowed, `${JSON.stringify(first)} before ${JSON.stringify(later)}`);
  }
});

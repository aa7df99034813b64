/**
 * The request event's JSON line, field by field (./../observability/json-fields.ts
 * says why): the same bytes as JSON.stringify(event), in the same key order,
 * ~1 µs less per event on Node 20. Other event kinds are rare and go through
 * JSON.stringify.
 */
import { jsonNumber as num, jsonString as str } from '../observability/json-fields.js';
import type { RequestUsageEvent } from './types.js';

export function requestEventJson(e: RequestUsageEvent): string {
  return `{"id":${str(e.id)},"ts":${str(e.ts)},"type":"request","tenantId":${str(e.tenantId)},"projectId":${str(e.projectId)},"apiKeyId":${str(e.apiKeyId)},"subject":${str(e.subject)},"route":${str(e.route)},"method":${str(e.method)},"status":${num(e.status)},"outcome":${str(e.outcome)},"durationMs":${num(e.durationMs)},"bytesIn":${num(e.bytesIn)},"bytesOut":${num(e.bytesOut)},"cost":${num(e.cost)},"requestId":${str(e.requestId)},"plan":${str(e.plan)}}`;
}

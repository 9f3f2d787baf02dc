import { createHash } from 'node:crypto';

/**
 * A validation plan: what to check for each operation, as plain JSON so that it can be handed to the
 * offload threads once (in a SharedArrayBuffer) and compiled there. Schemas are JSON Schema; `$ref`s
 * into the OpenAPI document point at it as `api#/...`.
 */
export interface ValidationPlan {
  /** OpenAPI 3.1 schemas are JSON Schema 2020-12; 3.0 and plain schemas are draft-07 with `nullable`. */
  readonly dialect: 'draft-07' | '2020-12';
  /** The OpenAPI document (for `$ref`s), or null. */
  readonly document: unknown;
  readonly operations: Record<string, OperationPlan>;
}

export type ParameterLocation = 'path' | 'query' | 'header';

export interface OperationPlan {
  /** `operationId`, or `METHOD /template`. */
  readonly label: string;
  /** An object schema per location whose properties are the parameters (header names lower-case). */
  readonly parameters: Partial<Record<ParameterLocation, ObjectSchema>>;
  /** Query parameters sent as one comma-separated value (`style: form, explode: false` arrays). */
  readonly commaSeparated: readonly string[];
  readonly body: BodyPlan | null;
}

export interface BodyPlan {
  readonly required: boolean;
  /** Accepted media types (`application/json`, `image/*`, `*\/*`), each with its JSON Schema when the body is JSON. */
  readonly media: Record<string, unknown | null>;
}

export interface ObjectSchema {
  type: 'object';
  properties: Record<string, unknown>;
  required: string[];
}

/** What a request is checked against when the options give JSON Schemas instead of a document. */
export const ANY_OPERATION = '*';

/** The media type without parameters, lower-case: `application/json; charset=utf-8` → `application/json`. */
export function mediaTypeOf(contentType: string | undefined): string | null {
  if (contentType === undefined) return null;
  const semicolon = contentType.indexOf(';');
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase() || null;
}

/** The declared media type a request's type falls under: exact, then `type/*`, then `*\/*`. */
export function matchMediaType(declared: Record<string, unknown>, mediaType: string): string | null {
  if (mediaType in declared) return mediaType;
  const wildcard = `${mediaType.slice(0, mediaType.indexOf('/'))}/*`;
  if (wildcard in declared) return wildcard;
  return '*/*' in declared ? '*/*' : null;
}

/** JSON bodies are parsed and checked; other media types are only checked to be accepted. */
export function isJsonMediaType(mediaType: string): boolean {
  return mediaType === 'application/json' || mediaType.endsWith('+json');
}

/**
 * The plan as JSON text in shared memory, and a key naming it: handed to every task without being
 * copied, decoded and compiled once per thread.
 */
export function sharePlan(plan: ValidationPlan): { key: string; shared: SharedArrayBuffer } {
  const bytes = Buffer.from(JSON.stringify(plan), 'utf8');
  const shared = new SharedArrayBuffer(bytes.byteLength);
  new Uint8Array(shared).set(bytes);
  return { key: createHash('sha256').update(bytes).digest('hex').slice(0, 24), shared };
}

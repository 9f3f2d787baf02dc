import { Router } from '../../core/router.ts';
import type { BodyPlan, ObjectSchema, OperationPlan, ParameterLocation, ValidationPlan } from './plan.ts';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
// OpenAPI: header parameters of these names are ignored (the spec describes them elsewhere).
const IGNORED_HEADERS = new Set(['accept', 'content-type', 'authorization']);

interface ParameterObject {
  name?: string;
  in?: string;
  required?: boolean;
  schema?: unknown;
  style?: string;
  explode?: boolean;
  $ref?: string;
}

type Doc = Record<string, unknown> & { openapi?: unknown; paths?: Record<string, Record<string, unknown>> };

/** The plan for a document, and a router from a request's method and path to its operation key. */
export interface OpenApiPlan {
  readonly plan: ValidationPlan;
  readonly router: Router<string>;
}

/**
 * Reads an OpenAPI 3.x document into a plan: parameters merged from the path item and the operation
 * (the operation's win), `$ref`s to parameters and request bodies resolved, `{param}` templates
 * routed as `:param` under `prefix`. Problems throw, naming the operation.
 */
export function planFromOpenApi(document: unknown, prefix = ''): OpenApiPlan {
  const doc = document as Doc;
  if (typeof doc?.openapi !== 'string' || !/^3\.[01]\./.test(doc.openapi)) {
    throw new Error(`expected an OpenAPI 3.0 or 3.1 document, got "openapi": ${JSON.stringify(doc?.openapi)}`);
  }
  if (typeof doc.paths !== 'object' || doc.paths === null) throw new Error('the OpenAPI document has no "paths"');
  const operations: Record<string, OperationPlan> = {};
  const routes: { pattern: string; methods: string[]; value: string }[] = [];
  for (const [template, rawItem] of Object.entries(doc.paths)) {
    const item = resolve(doc, rawItem) as Record<string, unknown>;
    const shared = (item.parameters as ParameterObject[] | undefined) ?? [];
    const methods = METHODS.filter((method) => typeof item[method] === 'object' && item[method] !== null);
    for (const method of methods) {
      const operation = item[method] as { operationId?: string; parameters?: ParameterObject[]; requestBody?: unknown };
      const key = `${method.toUpperCase()} ${template}`;
      const label = operation.operationId ?? key;
      try {
        operations[key] = {
          label,
          ...parametersOf(doc, [...shared, ...(operation.parameters ?? [])]),
          body: bodyOf(doc, operation.requestBody),
        };
      } catch (error) {
        throw new Error(`operation ${label}: ${error instanceof Error ? error.message : String(error)}`);
      }
      const methodsRouted = method === 'get' && !methods.includes('head') ? ['GET', 'HEAD'] : [method.toUpperCase()];
      routes.push({ pattern: `${prefix}${template.replace(/\{([^}/]+)\}/g, ':$1')}`, methods: methodsRouted, value: key });
    }
  }
  const dialect = doc.openapi.startsWith('3.1') ? '2020-12' : 'draft-07';
  return { plan: { dialect, document: doc, operations }, router: new Router(routes) };
}

function parametersOf(doc: Doc, list: ParameterObject[]): Pick<OperationPlan, 'parameters' | 'commaSeparated'> {
  const byKey = new Map<string, ParameterObject>();
  for (const raw of list) {
    const parameter = resolve(doc, raw) as ParameterObject;
    if (typeof parameter.name !== 'string' || typeof parameter.in !== 'string') throw new Error('a parameter needs "name" and "in"');
    byKey.set(`${parameter.in}:${parameter.name}`, parameter);
  }
  const parameters: Partial<Record<ParameterLocation, ObjectSchema>> = {};
  const commaSeparated: string[] = [];
  for (const parameter of byKey.values()) {
    const where = parameter.in as string;
    if (where !== 'path' && where !== 'query' && where !== 'header') continue; // cookies: not checked
    const name = where === 'header' ? parameter.name!.toLowerCase() : parameter.name!;
    if (where === 'header' && IGNORED_HEADERS.has(name)) continue;
    const schema = (parameters[where] ??= { type: 'object', properties: {}, required: [] });
    schema.properties[name] = refsToApi(parameter.schema ?? {});
    if (parameter.required || where === 'path') schema.required.push(name);
    if (where === 'query' && parameter.explode === false && (parameter.style ?? 'form') === 'form') commaSeparated.push(name);
  }
  return { parameters, commaSeparated };
}

function bodyOf(doc: Doc, raw: unknown): BodyPlan | null {
  if (raw === undefined) return null;
  const body = resolve(doc, raw) as { required?: boolean; content?: Record<string, { schema?: unknown }> };
  const media: Record<string, unknown | null> = {};
  for (const [type, entry] of Object.entries(body.content ?? {})) {
    media[type.toLowerCase()] = entry?.schema === undefined ? null : refsToApi(entry.schema);
  }
  return { required: body.required === true, media };
}

/** Follows a local `$ref` (`#/components/parameters/Id`) to the object it names. */
function resolve(doc: Doc, value: unknown, seen = 0): unknown {
  const ref = (value as { $ref?: unknown } | null)?.$ref;
  if (typeof ref !== 'string') return value;
  if (!ref.startsWith('#/') || seen > 16) throw new Error(`cannot follow $ref ${JSON.stringify(ref)} (only local references are supported)`);
  let target: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const segment = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    target = (target as Record<string, unknown> | null)?.[segment];
    if (target === undefined) throw new Error(`$ref ${ref} points at nothing`);
  }
  return resolve(doc, target, seen + 1);
}

/** A schema copied out of the document keeps its `$ref`s working by naming the document: `#/x` → `api#/x`. */
function refsToApi(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(refsToApi);
  if (typeof schema !== 'object' || schema === null) return schema;
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    copy[key] = key === '$ref' && typeof value === 'string' && value.startsWith('#') ? `api${value}` : refsToApi(value);
  }
  return copy;
}

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { isJsonMediaType, type OperationPlan, type ParameterLocation, type ValidationPlan } from './plan.ts';

/** One request's parts, as the plugin hands them over (to a pool thread or inline). */
export interface ValidateInput {
  /** The plan as JSON text in shared memory: sent with every task without being copied. */
  readonly plan: SharedArrayBuffer;
  /** Identifies the plan, so each thread compiles it once. */
  readonly planKey: string;
  readonly operation: string;
  /** Path parameters, percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The raw query string. */
  readonly query: string;
  /** Only the headers the operation declares. */
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** The JSON body to check, or null; read only when the operation has a schema for its media type. */
  readonly body: Uint8Array | null;
  /** The declared media type whose schema `body` is checked against. */
  readonly bodyMediaType: string | null;
}

export interface Violation {
  /** Where: `path`, `query`, `header` or `body`. */
  readonly in: ParameterLocation | 'body';
  /** A JSON pointer into that part (`/items/0/qty`; `/id` for a parameter). */
  readonly path: string;
  readonly message: string;
}

export interface ValidateResult {
  readonly violations: Violation[];
}

type AjvInstance = InstanceType<typeof Ajv>;
const addFormats = addFormatsModule as unknown as (ajv: AjvInstance) => void;

interface CompiledOperation {
  readonly plan: OperationPlan;
  readonly parameters: Partial<Record<ParameterLocation, ValidateFunction>>;
  readonly bodies: Record<string, ValidateFunction | null>;
}

/** A plan compiled with ajv: operations compile on first use, once per thread. */
export class CompiledPlan {
  readonly #plan: ValidationPlan;
  // Parameters arrive as strings: coerce them to the declared types (and single values to arrays).
  readonly #coercing: AjvInstance;
  readonly #strict: AjvInstance;
  readonly #operations = new Map<string, CompiledOperation>();

  constructor(plan: ValidationPlan) {
    this.#plan = plan;
    this.#coercing = createAjv(plan, true);
    this.#strict = createAjv(plan, false);
  }

  /** Compiles every operation now, so that a broken schema fails at startup, naming its operation. */
  compileAll(): void {
    for (const key of Object.keys(this.#plan.operations)) this.operation(key);
  }

  operation(key: string): CompiledOperation {
    let compiled = this.#operations.get(key);
    if (compiled !== undefined) return compiled;
    const plan = this.#plan.operations[key];
    if (plan === undefined) throw new Error(`no operation ${key} in the plan`);
    try {
      const parameters: CompiledOperation['parameters'] = {};
      for (const [where, schema] of Object.entries(plan.parameters)) {
        parameters[where as ParameterLocation] = this.#coercing.compile(schema);
      }
      const bodies: Record<string, ValidateFunction | null> = {};
      for (const [type, schema] of Object.entries(plan.body?.media ?? {})) {
        bodies[type] = schema !== null && isJsonMediaType(type) ? this.#strict.compile(schema as object) : null;
      }
      compiled = { plan, parameters, bodies };
    } catch (error) {
      throw new Error(`operation ${plan.label}: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.#operations.set(key, compiled);
    return compiled;
  }
}

function createAjv(plan: ValidationPlan, coerce: boolean): AjvInstance {
  const options = { allErrors: true, strict: false, coerceTypes: coerce ? ('array' as const) : false, discriminator: true };
  const ajv = plan.dialect === '2020-12' ? new Ajv2020(options) : new Ajv(options);
  addFormats(ajv);
  if (plan.document !== null) ajv.addSchema(plan.document as object, 'api', undefined, false);
  return ajv;
}

// Per thread (and once on the event loop, for inline runs): compiled plans by key.
const plans = new Map<string, CompiledPlan>();

/** Compiles a plan (every operation) on this thread ahead of the first request; throws on a broken schema. */
export function preparePlan(key: string, plan: ValidationPlan): void {
  const compiled = new CompiledPlan(plan);
  compiled.compileAll();
  plans.set(key, compiled);
}

function planFor(key: string, shared: SharedArrayBuffer): CompiledPlan {
  let compiled = plans.get(key);
  if (compiled === undefined) {
    // TextDecoder refuses shared memory: copy the text out once.
    const text = new TextDecoder().decode(new Uint8Array(shared).slice());
    compiled = new CompiledPlan(JSON.parse(text) as ValidationPlan);
    plans.set(key, compiled);
  }
  return compiled;
}

/** Checks one request against its operation; every violation is listed, not just the first. */
export default function validateRequest(input: ValidateInput): ValidateResult {
  const operation = planFor(input.planKey, input.plan).operation(input.operation);
  const violations: Violation[] = [];
  const { parameters } = operation;
  if (parameters.path) check(parameters.path, { ...input.params }, 'path', violations);
  if (parameters.query) check(parameters.query, parseQuery(input.query, operation.plan.commaSeparated), 'query', violations);
  if (parameters.header) check(parameters.header, { ...input.headers }, 'header', violations);

  const validate = input.body === null || input.bodyMediaType === null ? undefined : operation.bodies[input.bodyMediaType];
  if (!validate) return { violations };
  let value: unknown;
  try {
    // Through Buffer, which (unlike TextDecoder) reads shared memory.
    const bytes = input.body!;
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    violations.push({ in: 'body', path: '', message: `the body is not valid JSON (${(error as Error).message})` });
    return { violations };
  }
  check(validate, value, 'body', violations);
  return { violations };
}

function check(validate: ValidateFunction, value: unknown, where: Violation['in'], violations: Violation[]): void {
  if (validate(value)) return;
  for (const error of validate.errors ?? []) violations.push({ in: where, path: pathOf(error), message: messageOf(error) });
}

/** ajv reports a missing or extra property at its parent; point at the property itself. */
function pathOf(error: ErrorObject): string {
  const params = error.params as { missingProperty?: string; additionalProperty?: string };
  const child = params.missingProperty ?? params.additionalProperty;
  return child === undefined ? error.instancePath : `${error.instancePath}/${child.replaceAll('~', '~0').replaceAll('/', '~1')}`;
}

function messageOf(error: ErrorObject): string {
  if (error.keyword === 'required') return 'is required';
  if (error.keyword === 'additionalProperties') return 'is not allowed';
  if (error.keyword === 'enum') return `${error.message}: ${(error.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return error.message ?? error.keyword;
}

function parseQuery(query: string, commaSeparated: readonly string[]): Record<string, string | string[]> {
  const values: Record<string, string | string[]> = {};
  for (const [name, value] of new URLSearchParams(query)) {
    const parts = commaSeparated.includes(name) ? value.split(',') : [value];
    const existing = values[name];
    if (existing === undefined) values[name] = parts.length === 1 ? parts[0]! : parts;
    else values[name] = [...(Array.isArray(existing) ? existing : [existing]), ...parts];
  }
  return values;
}

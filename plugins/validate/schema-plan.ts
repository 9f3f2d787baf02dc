import { ANY_OPERATION, type ObjectSchema, type ParameterLocation, type ValidationPlan } from './plan.ts';

export interface SchemaOptions {
  params?: Record<string, unknown> | boolean | undefined;
  query?: Record<string, unknown> | boolean | undefined;
  headers?: Record<string, unknown> | boolean | undefined;
  body?: Record<string, unknown> | boolean | undefined;
  bodyRequired: boolean;
}

/** A plan of one operation that every request of the route is checked against. */
export function planFromSchemas(schemas: SchemaOptions): ValidationPlan {
  const parameters: Partial<Record<ParameterLocation, ObjectSchema>> = {};
  if (schemas.params !== undefined) parameters.path = schemas.params as unknown as ObjectSchema;
  if (schemas.query !== undefined) parameters.query = schemas.query as unknown as ObjectSchema;
  if (schemas.headers !== undefined) parameters.header = withLowerCaseNames(schemas.headers);
  const body = schemas.body === undefined && !schemas.bodyRequired ? null : { required: schemas.bodyRequired, media: { 'application/json': schemas.body ?? null } };
  return {
    dialect: 'draft-07',
    document: null,
    operations: { [ANY_OPERATION]: { label: 'the route', parameters, commaSeparated: [], body } },
  };
}

// Node gives header names in lower case; a schema that names `X-Tenant` must still find it.
function withLowerCaseNames(schema: Record<string, unknown> | boolean): ObjectSchema {
  if (typeof schema === 'boolean') return schema as unknown as ObjectSchema;
  const copy = { ...schema } as Record<string, unknown>;
  if (copy.properties && typeof copy.properties === 'object') {
    copy.properties = Object.fromEntries(Object.entries(copy.properties).map(([name, value]) => [name.toLowerCase(), value]));
  }
  if (Array.isArray(copy.required)) copy.required = copy.required.map((name) => String(name).toLowerCase());
  return copy as unknown as ObjectSchema;
}

/** The plugins bundled with tollgate. */
export { headers } from './headers/index.ts';
export { keyAuth, type ResolvedConsumer } from './key-auth/index.ts';
export { hashKey } from './key-auth/key-hash.ts';
export { jwtAuth } from './jwt-auth/index.ts';
export { basicAuth } from './basic-auth/index.ts';
export { acl } from './acl/index.ts';
export { anyOf } from './any-of/index.ts';
export { rateLimit } from './rate-limit/index.ts';
export { cache } from './cache/index.ts';
export { validate } from './validate/index.ts';
export { transform, type JsonTransform, type TransformInfo } from './transform/index.ts';

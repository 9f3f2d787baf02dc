/**
 * Metadata a deployment keeps on its consumers (plan, tenant...). Type it by declaration merging:
 *
 * ```ts
 * declare module 'tollgate' {
 *   interface ConsumerMetadata { plan: 'free' | 'pro'; tenant: string }
 * }
 * ```
 */
export interface ConsumerMetadata {}

/** The identity an auth plugin established for a request; later plugins key limits and logs by it. */
export interface Consumer {
  readonly id: string;
  /** Groups for access rules (ACLs). */
  readonly groups: readonly string[];
  readonly metadata: Readonly<Partial<ConsumerMetadata>>;
  /** The plugin that authenticated it, e.g. `key-auth`. */
  readonly via: string;
  /** For a consumer identified by a token: its verified claims. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

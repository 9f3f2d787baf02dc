import { z } from 'zod';
import type { Consumer, ConsumerMetadata } from '../../core/index.ts';

/** The consumer fields an auth plugin's config entries share: groups and typed metadata. */
export const consumerFields = {
  groups: z.array(z.string()).default([]),
  /** Typed by your `ConsumerMetadata` declaration (see core/consumer.ts). */
  metadata: z
    .custom<Partial<ConsumerMetadata>>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'expected an object')
    .default({}),
};

/** A consumer, frozen: later plugins read it, none may change who the caller is. */
export function makeConsumer(id: string, fields: { groups?: string[]; metadata?: Partial<ConsumerMetadata> }, via: string): Consumer {
  return Object.freeze({ id, groups: fields.groups ?? [], metadata: fields.metadata ?? {}, via });
}

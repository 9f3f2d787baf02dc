import { loadTask } from '../../core/offload/task-loading.ts';
import { withMovedBytes } from '../../core/offload/task-runner.ts';

/** What a transform function learns about the message besides its body. */
export interface TransformInfo {
  /** `'request'` before forwarding, `'response'` on the way back. */
  readonly direction: 'request' | 'response';
  readonly method: string;
  /** The route's pattern, e.g. `/orders/:id`. */
  readonly route: string | null;
  readonly params: Readonly<Record<string, string>>;
  /** The raw query string. */
  readonly query: string;
  /** The authenticated consumer's id, or null. */
  readonly consumer: string | null;
  /** The upstream's status (responses only). */
  readonly status: number | null;
}

/**
 * The shape of a user's transform: gets the parsed JSON body, returns the new one (or `undefined`
 * to leave the body as it was). It runs on an offload thread for large bodies, so it sees only its
 * arguments: no closures over the config, no shared state.
 */
export type JsonTransform = (body: unknown, info: TransformInfo) => unknown;

export interface TransformInput {
  /** `file:` URL of the user's module, and which export to call. */
  readonly module: string;
  readonly export: string;
  readonly body: Uint8Array;
  readonly info: TransformInfo;
}

export interface TransformOutput {
  /** The body to send: the input's own bytes when `changed` is false. */
  readonly body: Uint8Array;
  /** False when the transform returned `undefined`: the representation (and its ETag) still holds. */
  readonly changed: boolean;
}

/**
 * Parses, transforms, serialises: all the CPU work in one place, wherever it runs. Always answers
 * with the bytes (the input's own when the transform returned `undefined`), so a body moved to the
 * thread comes back either way, and says whether they changed.
 */
export default async function transformJson(input: TransformInput): Promise<TransformOutput> {
  const transform = (await loadTask(input.module, input.export)) as unknown as JsonTransform;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(input.body));
  } catch (error) {
    throw new Error(`the ${input.info.direction} body is not valid JSON (${(error as Error).message})`);
  }
  const result = await transform(parsed, input.info);
  const body = result === undefined ? input.body : new TextEncoder().encode(JSON.stringify(result));
  return withMovedBytes({ body, changed: result !== undefined }, body);
}

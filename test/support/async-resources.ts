import { createHook } from 'node:async_hooks';

/**
 * How many async resources of `type` (`PROMISE`, `Timeout`...) were made while `work` ran by code
 * whose creation stack `madeBy` accepts. The stack lets a test count the gateway's resources and not
 * its own client's, which run in the same process.
 */
export async function resourcesMadeDuring(type: string, madeBy: (stack: string) => boolean, work: () => void | Promise<void>): Promise<number> {
  let made = 0;
  const hook = createHook({
    init(_id, resourceType) {
      if (resourceType !== type) return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 40;
      const stack = new Error().stack ?? '';
      Error.stackTraceLimit = limit;
      if (madeBy(stack)) made++;
    },
  }).enable();
  try {
    await work();
  } finally {
    hook.disable();
  }
  return made;
}

import { z } from 'zod';
import { definePlugin } from '../../core/index.ts';
import { HEADER_NAME } from '../../core/http/header-map.ts';

const headerValues = z.record(z.string(), z.string()).check((ctx) => {
  for (const name of Object.keys(ctx.value)) {
    if (!HEADER_NAME.test(name)) {
      ctx.issues.push({ code: 'custom', path: [name], input: name, message: `"${name}" is not a valid header name` });
    }
  }
});

const headerChanges = z
  .strictObject({
    /** Headers to set, replacing any value already there. */
    set: headerValues.default({}),
    /** Header names to remove. */
    remove: z.array(z.string()).default([]),
  })
  .prefault({});

const options = z.strictObject({
  /** Changes to the request sent upstream. */
  request: headerChanges,
  /** Changes to the response sent to the client (upstream answers, early replies and errors alike). */
  response: headerChanges,
});

/** Sets and removes request and response headers. */
export const headers = definePlugin({
  name: 'headers',
  version: '1.0.0',
  options,
  setup({ request, response }) {
    const requestSet = Object.entries(request.set);
    const responseSet = Object.entries(response.set);
    return {
      onRequest(ctx) {
        for (const name of request.remove) ctx.upstreamRequest.headers.delete(name);
        for (const [name, value] of requestSet) ctx.upstreamRequest.headers.set(name, value);
      },
      onResponse(_ctx, res) {
        for (const name of response.remove) res.headers.delete(name);
        for (const [name, value] of responseSet) res.headers.set(name, value);
      },
    };
  },
});

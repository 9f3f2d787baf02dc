// Type tests for ctx.state: fields are declared by declaration merging, and then type-checked in
// every plugin that reads or writes them.
import { definePlugin } from '../../core/index.ts';

declare module '../../core/index.ts' {
  interface RequestState {
    tenant?: string;
  }
}

definePlugin({
  name: 'sets-tenant',
  version: '1.0.0',
  setup: () => ({
    onRequest(ctx) {
      ctx.state.tenant = 'acme';
      // @ts-expect-error: tenant is declared a string
      ctx.state.tenant = 42;
      // @ts-expect-error: an undeclared field
      ctx.state.plan = 'pro';
    },
  }),
});

definePlugin({
  name: 'reads-tenant',
  version: '1.0.0',
  setup: () => ({
    onRequest(ctx) {
      const tenant: string | undefined = ctx.state.tenant;
      void tenant;
    },
  }),
});

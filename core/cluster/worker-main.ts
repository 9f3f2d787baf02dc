import { applyWorkerV8Flags } from './worker-v8-flags.ts';

applyWorkerV8Flags();
const { runWorker } = await import('./worker.ts');
await runWorker();

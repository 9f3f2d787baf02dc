import { startBodyScavenges } from '../http/body-scavenges.ts';
import { applyWorkerV8Flags } from './worker-v8-flags.ts';

applyWorkerV8Flags();
startBodyScavenges();
const { runWorker } = await import('./worker.ts');
await runWorker();

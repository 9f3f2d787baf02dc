/** The plugins bundled with tollgate. */
export { headers } from './headers/index.ts';

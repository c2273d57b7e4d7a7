import type { KindDefinition } from '../kinds.ts';

export const meshgateKinds: KindDefinition[] = [];

import type { KindDefinition } from '../kinds.ts';

export const istioSecurityKinds: KindDefinition[] = [];

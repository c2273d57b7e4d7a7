import type { KindDefinition } from '../kinds.ts';

export const envoyGatewayKinds: KindDefinition[] = [];

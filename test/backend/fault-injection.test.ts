import { describe, expect, it } from 'vitest';
import { FaultInjection } from '../../shared/backend/fault-injection.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

describe('fault injection', () => {
  it('delays and aborts every request at 100%', () => {
    const f = new FaultInjection({
      delay: { ms: 250, percentage: 100 },
      abort: { httpStatus: 418, percentage: 100 },
    });
    expect(f.delayMs(() => 0.99)).toBe(250);
    expect(f.abort(() => 0.99)).toMatchObject({ httpStatus: 418 });
  });

  it('never at 0%, and about the configured share in between, each drawn on its own', () => {
    const f = new FaultInjection({
      delay: { ms: 10, percentage: 20 },
      abort: { grpcStatus: 14, percentage: 0.5 },
    });
    const random = seededRandom(42);
    let delayed = 0;
    let aborted = 0;
    for (let i = 0; i < 20_000; i++) {
      if (f.delayMs(random) > 0) delayed++;
      if (f.abort(random)) aborted++;
    }
    expect(delayed / 20_000).toBeCloseTo(0.2, 1);
    expect(aborted).toBeGreaterThan(50);
    expect(aborted).toBeLessThan(150);
    expect(
      new FaultInjection({ abort: { httpStatus: 500, percentage: 0 } }).abort(() => 0),
    ).toBeUndefined();
  });

  it('does nothing for what is not configured', () => {
    const f = new FaultInjection({});
    expect(f.delayMs(() => 0)).toBe(0);
    expect(f.abort(() => 0)).toBeUndefined();
  });
});

// Weighted choice among a rule's backendRefs (traffic splitting), built once per snapshot.

export interface WeightedPicker<T> {
  pick(random: () => number): T | undefined;
}

export function weightedPicker<T>(
  items: readonly { item: T; weight: number }[],
): WeightedPicker<T> {
  const live = items.filter((i) => i.weight > 0);
  if (live.length === 0) return { pick: () => undefined };
  if (live.length === 1) {
    const only = (live[0] as { item: T }).item;
    return { pick: () => only };
  }
  const cumulative: number[] = [];
  let total = 0;
  for (const i of live) cumulative.push((total += i.weight));
  return {
    pick(random) {
      const x = random() * total;
      for (let k = 0; k < cumulative.length; k++)
        if (x < (cumulative[k] as number)) return (live[k] as { item: T }).item;
      return (live[live.length - 1] as { item: T }).item;
    },
  };
}

// A proxy stack is a list of layers run in order over one request (DESIGN: "Data plane: a stack
// of small layers"). A layer reads and fills in the request, may answer it (setting `done`) or
// throw a ProxyError, which the stack's one rescue turns into a response.

export interface LayeredRequest {
  /** A layer already answered: the rest are skipped. */
  done: boolean;
}

export type StackLayer<R extends LayeredRequest> = (r: R) => void | Promise<void>;

/**
 * Runs the layers in order; synchronous layers stay synchronous, so a request that needs no I/O
 * before the last layer awaits nothing.
 */
export function runLayers<R extends LayeredRequest>(
  layers: readonly StackLayer<R>[],
  r: R,
  from = 0,
): void | Promise<void> {
  for (let i = from; i < layers.length; i++) {
    if (r.done) return;
    const out = (layers[i] as StackLayer<R>)(r);
    if (out) return out.then(() => runLayers(layers, r, i + 1));
  }
}

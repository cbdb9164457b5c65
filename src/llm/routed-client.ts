/**
 * One `ModelClient` over two: the tasks routed to the embedded model (`local://embedded`:
 * LOCAL_MODEL, or a `local:` LoRA adapter on it) go to the in-process client, the others to
 * the endpoint's client. That is how an endpoint serves most tasks while a small model
 * fine-tuned on our runs serves `continue` on this machine (docs/local-model.md).
 *
 * Each task's route is reported by the client that serves it, so a run records the route
 * that wrote it (an adapter route on the local side).
 */
import { isLocalRoute } from "./local-adapters.ts";
import type { ChatRequest, ChatResult, ChatStreamEvent, ModelClient, ModelRoute, Task } from "./types.ts";

export class RoutedModelClient implements ModelClient {
  readonly #routes: Record<Task, ModelRoute>;
  readonly #local: ModelClient;
  readonly #remote: ModelClient;

  /** `routes`: every task's route (configuration and stored routes); `local` serves those on `local://embedded`. */
  constructor(routes: Record<Task, ModelRoute>, clients: { local: ModelClient; remote: ModelClient }) {
    this.#routes = routes;
    this.#local = clients.local;
    this.#remote = clients.remote;
  }

  #for(task: Task): ModelClient {
    return isLocalRoute(this.#routes[task]) ? this.#local : this.#remote;
  }

  route(task: Task): ModelRoute {
    return this.#for(task).route(task);
  }

  stream(req: ChatRequest): AsyncIterable<ChatStreamEvent> {
    return this.#for(req.task).stream(req);
  }

  complete(req: ChatRequest): Promise<ChatResult> {
    return this.#for(req.task).complete(req);
  }

  async close(): Promise<void> {
    await Promise.all([this.#local.close?.(), this.#remote.close?.()]);
  }
}

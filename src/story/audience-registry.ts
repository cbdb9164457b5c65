import type { Audience } from "./ports/audience.ts";

type Resolver = (conversationId: string) => Audience | undefined | Promise<Audience | undefined>;

/**
 * Where each conversation's chapters are shown. The terminal registers its one
 * audience; a chat platform registers a resolver for all of its conversations
 * (`telegram:<chat id>`), which builds an audience on demand from the chat's settings.
 */
export class AudienceRegistry {
  private readonly fixed = new Map<string, Audience>();
  private readonly platforms = new Map<string, Resolver>();

  set(conversationId: string, audience: Audience): void {
    this.fixed.set(conversationId, audience);
  }

  /** Resolve every `<platform>:...` conversation with `resolver`. */
  platform(platform: string, resolver: Resolver): void {
    this.platforms.set(platform, resolver);
  }

  async resolve(conversationId: string): Promise<Audience | undefined> {
    const fixed = this.fixed.get(conversationId);
    if (fixed !== undefined) return fixed;
    const platform = conversationId.slice(0, conversationId.indexOf(":"));
    return this.platforms.get(platform)?.(conversationId);
  }
}

import type { MessageId, MessageParams } from "../i18n/messages.ts";

/**
 * An error whose text a reader may see: an identifier from the message
 * catalogue plus its parameters. Raising one never changes state: handlers
 * validate before they write.
 */
export class UserFacingError extends Error {
  override readonly name = "UserFacingError";
  constructor(
    readonly id: MessageId,
    readonly params: MessageParams = {},
  ) {
    super(id);
  }
}

/**
 * Button and modal `custom_id`s on Discord (1-100 characters): the shared action codec
 * (commands/action-codec.ts) in Discord's framing, `ink:p:<storyId>:<rev>:<pos>`. The
 * `ink` prefix tells our components from anything else's.
 */
import { type ActionOf, codecFor, DISCORD_CUSTOM_ID_FORMAT } from "../../commands/action-codec.ts";

export type CustomIdAction = ActionOf<typeof DISCORD_CUSTOM_ID_FORMAT>;
export const CUSTOM_ID_MAX_LENGTH = DISCORD_CUSTOM_ID_FORMAT.max.chars;
export const CUSTOM_ID_PREFIX = DISCORD_CUSTOM_ID_FORMAT.prefix;
/** The custom id of the text input inside the suggestion modal. */
export const SUGGESTION_INPUT_ID = "text";
export const { encode: encodeCustomId, decode: decodeCustomId } = codecFor(DISCORD_CUSTOM_ID_FORMAT);

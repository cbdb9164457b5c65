/**
 * Inline-button payloads on Telegram (`callback_data`, 1-64 bytes): the shared action
 * codec (commands/action-codec.ts) in Telegram's framing, `p|<storyId>|<rev>|<pos>`.
 */
import { type ActionOf, codecFor, TELEGRAM_CALLBACK_FORMAT } from "../../commands/action-codec.ts";

export type CallbackAction = ActionOf<typeof TELEGRAM_CALLBACK_FORMAT>;
export const CALLBACK_DATA_MAX_BYTES = TELEGRAM_CALLBACK_FORMAT.max.bytes;
export const { encode: encodeCallback, decode: decodeCallback } = codecFor(TELEGRAM_CALLBACK_FORMAT);

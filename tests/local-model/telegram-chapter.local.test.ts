/**
 * A story turn on the embedded model through the real Telegram bot: the telegraf client
 * against the fake Bot API server (tests/fakes/fake-telegram-server.ts, which checks text
 * lengths in UTF-16 units, HTML well-formedness, callback data and identical edits as
 * Telegram does), the bot launched as `npm start` runs it (tests/helpers/telegram-app.ts),
 * with `LOCAL_MODEL` at the tiny random llama and no OPENAI_* at all, so every task runs on
 * node-llama-cpp from LOCAL_RUNTIME_DIR. The model and its knobs (favoured tokens, a 16k
 * context, a seed, one thread) are those of the terminal end to end
 * (tests/helpers/local-terminal.ts).
 *
 * A private chat sends `/start <scenario>`, sees chapter 1 stream into a draft and arrive as
 * a formatted message, then its choices keyboard; a choice button writes chapter 2 with its
 * own. The text is gibberish by design (odd bytes, `<`, `&`, quotes, replacement
 * characters): what is proven is the flow, and that such text reaches the reader whole.
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, without it.
 */
import { describe, expect, it } from "vitest";
import { t } from "../../src/i18n/messages.ts";
import { FakeTelegramServer } from "../fakes/fake-telegram-server.ts";
import {
  expectCarriable,
  expectNoFailure,
  expectTwoLocalChapters,
  squeeze,
  useLocalBotFixture,
} from "../helpers/local-bot.ts";
import { TURN_MS } from "../helpers/local-terminal.ts";
import { launchTelegramApp, stopTelegramApp, type TelegramApp } from "../helpers/telegram-app.ts";

type Msg = ReturnType<FakeTelegramServer["messages"]>[number];

const buttons = (m: Msg | undefined) =>
  (
    m?.reply_markup as { inline_keyboard?: { text: string; callback_data?: string }[][] } | undefined
  )?.inline_keyboard?.flat() ?? [];
const choiceButtons = (m: Msg | undefined) => buttons(m).filter((b) => b.callback_data?.startsWith("p|"));

/** Telegram's longest message text, in UTF-16 code units after entity parsing. */
const MAX_TEXT = 4096;
const PICK_PROMPT = t("en", "pick.prompt");

describe("a chapter on the embedded model, through the Telegram bot", { timeout: 120_000 }, () => {
  let tg: FakeTelegramServer | undefined;
  let app: TelegramApp | undefined;
  const logs: string[] = [];
  const fixture = useLocalBotFixture("inkloom-local-tg-", async () => {
    if (app !== undefined) await stopTelegramApp(app);
    await tg?.close();
  });

  it("/start <scenario> streams chapter 1 and its choices; a choice button writes chapter 2", async () => {
    const server = await FakeTelegramServer.start();
    tg = server;
    app = await launchTelegramApp({ tg: server }, fixture.databaseUrl, (m) => logs.push(m), fixture.env);
    const { engine } = app;
    const ann = server.user({ first_name: "Ann" });
    const chat = server.chat("private", { user: ann });
    const messages = () => server.messages(chat.id);
    /** Messages offering choices now (a closed offer keeps only its rating row). */
    const offers = () => messages().filter((m) => choiceButtons(m).length > 0);
    const seen = () => `messages: ${JSON.stringify(messages(), null, 1)}\nlog:\n${logs.join("\n")}`;

    server.sendText(chat, ann, "/start a lighthouse keeper finds a letter from the future");
    const first = await tg
      .waitFor(() => offers()[0], TURN_MS)
      .catch((error: unknown) => {
        throw new Error(`no choices after chapter 1: ${String(error)}\n${seen()}`);
      });
    // Chapter 2 is written only on a press: nothing but chapter 1 and its choices so far.
    expect(offers()).toHaveLength(1);
    const firstChoices = choiceButtons(first);
    expect(firstChoices.length, seen()).toBeGreaterThanOrEqual(2);

    const pick = firstChoices[0]?.callback_data ?? "";
    await server.clickButton(chat, ann, first.message_id, pick);
    const second = await tg
      .waitFor(() => offers().find((m) => m.message_id > first.message_id), TURN_MS)
      .catch((error: unknown) => {
        throw new Error(`no choices after chapter 2: ${String(error)}\n${seen()}`);
      });
    expect(choiceButtons(second).length, seen()).toBeGreaterThanOrEqual(2);

    const all = messages();
    const chapters = await expectTwoLocalChapters(engine.db, seen);

    for (const chapter of chapters) {
      // One message opens the chapter, in bold, sent once: the draft became one real message.
      const heading = new RegExp(`^Chapter ${chapter.number}\\b`);
      const opening = all.filter((m) => heading.test(m.text));
      expect(opening, seen()).toHaveLength(1);
      const start = opening[0];
      expect(start?.parse_mode).toBe("HTML");
      expect(start?.entities?.[0]).toMatchObject({ type: "bold", offset: 0 });
      // What the reader sees is the chapter as stored: the gibberish survived the HTML escaping
      // (and, were it long, the split) whole.
      const offer = chapter.number === 1 ? first : second;
      const body = all.filter((m) => m.message_id >= (start?.message_id ?? 0) && m.message_id < offer.message_id);
      expect(squeeze(body.map((m) => m.text).join("")), seen()).toBe(
        squeeze(`Chapter ${chapter.number}${chapter.text}`),
      );
      expect(squeeze(chapter.text)).not.toBe("");
    }

    // Streamed: private chats preview the chapter in a native draft, growing, one draft per
    // chapter, each a prefix of the message it became.
    const drafts = server.drafts(chat.id);
    const draftIds = [...new Set(drafts.map((d) => d.draft_id))];
    expect(draftIds, JSON.stringify(drafts)).toHaveLength(2);
    for (const [i, id] of draftIds.entries()) {
      const final = all.find((m) => m.text.startsWith(`Chapter ${i + 1}`))?.text ?? "";
      for (const draft of drafts.filter((d) => d.draft_id === id)) {
        expect(draft.text.startsWith(`Chapter ${i + 1}`)).toBe(true);
        expect(final.startsWith(draft.text), JSON.stringify({ draft, final })).toBe(true);
      }
    }

    // One choices message per chapter: chapter 1's closed on the press (its rating row stays),
    // chapter 2's open.
    const offered = all.filter((m) => m.history[0] === PICK_PROMPT);
    expect(offered.map((m) => m.message_id)).toEqual([first.message_id, second.message_id]);
    const closed = all.find((m) => m.message_id === first.message_id);
    expect(closed?.text).toContain("Chosen:");
    expect(choiceButtons(closed)).toEqual([]);
    expect(offers().map((m) => m.message_id)).toEqual([second.message_id]);

    // No message twice, none over Telegram's limits, nothing Telegram would refuse as not UTF-8;
    // no error notice, no Retry button, no refused call, nothing logged as failing.
    const texts = all.map((m) => m.text);
    expectCarriable(
      [...texts, ...drafts.map((d) => d.text), ...all.flatMap((m) => buttons(m).map((b) => b.text))],
      MAX_TEXT,
    );
    expect(all.flatMap((m) => buttons(m)).filter((b) => b.callback_data?.startsWith("r|"))).toEqual([]);
    expectNoFailure(texts, server.calls, logs, seen);
  });
});

/**
 * A story turn on the embedded model through the real Discord bot: the discord.js client
 * (gateway and REST) against the fake Discord (tests/fakes/fake-discord-server.ts, which
 * refuses content over 2,000 characters, empty messages, bad components and button labels
 * over 80 as Discord does), the bot launched as `npm start` runs it
 * (tests/helpers/discord-app.ts), with `LOCAL_MODEL` at the tiny random llama and no
 * OPENAI_* at all, so every task runs on node-llama-cpp from LOCAL_RUNTIME_DIR. The model and
 * its knobs (favoured tokens, a 16k context, a seed, one thread) are those of the terminal
 * end to end (tests/helpers/local-terminal.ts).
 *
 * A member runs `/start`, writes the scenario in its modal, and the story opens a thread:
 * chapter 1 streams into it (a post, then edits), then its ballot. Two members vote, the
 * starter closes the vote, and chapter 2 follows with its own ballot, as in
 * tests/e2e/discord.test.ts. The text is gibberish by design: what is proven is the flow,
 * and that such text reaches the readers whole, within Discord's limits.
 *
 * Opt-in (`LOCAL_RUNTIME_DIR=<prefix> npm run test:local`): fails, never skips, without it.
 */
import { describe, expect, it } from "vitest";
import { FakeDiscordServer, type FakeMessage, type FakeUser } from "../fakes/fake-discord-server.ts";
import { ballotIn, buttonsOf, type DiscordApp, launchDiscordApp, stopDiscordApp } from "../helpers/discord-app.ts";
import {
  expectCarriable,
  expectNoFailure,
  expectTwoLocalChapters,
  squeeze,
  useLocalBotFixture,
} from "../helpers/local-bot.ts";
import { TURN_MS } from "../helpers/local-terminal.ts";

/** Discord's longest message content. */
const MAX_CONTENT = 2000;
/** Discord's longest button label. */
const MAX_LABEL = 80;

const newer = (a: FakeMessage, b: FakeMessage) => BigInt(a.id) > BigInt(b.id);
const votesOf = (m: FakeMessage | undefined) => buttonsOf(m).filter((b) => b.custom_id?.startsWith("ink:v:"));

describe("a chapter on the embedded model, through the Discord bot", { timeout: 120_000 }, () => {
  let discord: FakeDiscordServer | undefined;
  let app: DiscordApp | undefined;
  const logs: string[] = [];
  const fixture = useLocalBotFixture("inkloom-local-dc-", async () => {
    if (app !== undefined) await stopDiscordApp(app);
    await discord?.close();
  });

  it("/start -> modal -> thread -> chapter 1 streamed with its ballot -> votes, close -> chapter 2", async () => {
    const server = await FakeDiscordServer.start();
    discord = server;
    app = await launchDiscordApp({ discord: server }, fixture.databaseUrl, (m) => logs.push(m), fixture.env);
    const { engine } = app;
    const guild = server.guild({ name: "Book Club" });
    const channel = server.textChannel(guild, { name: "stories" });
    const [ann, bea, cal] = ["ann", "bea", "cal"].map((username) => {
      const user = server.user({ username });
      server.addMember(guild, user);
      return user;
    }) as [FakeUser, FakeUser, FakeUser];
    const threadOf = () => server.threads(channel)[0];
    const messages = () => server.messages(threadOf()?.id ?? channel.id).filter((m) => !m.deleted);
    const seen = () =>
      `messages: ${JSON.stringify(
        messages().map((m) => ({ id: m.id, content: m.content, history: m.contentHistory, buttons: buttonsOf(m) })),
        null,
        1,
      )}\nlog:\n${logs.join("\n")}`;

    const modal = await discord
      .slashCommand(guild, channel, ann, "start", [{ name: "genre", type: 3, value: "mystery" }])
      .response();
    expect(modal.type).toBe(9);
    const submitted = server.submitModal(guild, channel, ann, String(modal.data?.custom_id), {
      scenario: "a lighthouse keeper finds a letter from the future",
    });
    expect((await submitted.response()).type).toBe(5);
    const thread = await server.waitFor(threadOf);
    const first = await discord
      .waitFor(() => ballotIn(server, thread.id), TURN_MS)
      .catch((error: unknown) => {
        throw new Error(`no ballot after chapter 1: ${String(error)}\n${seen()}`);
      });
    await server.waitFor(() => submitted.original()?.content?.includes(`<#${thread.id}>`));
    const firstVotes = votesOf(first);
    expect(firstVotes.length, seen()).toBeGreaterThanOrEqual(2);

    // Two members vote for the second choice, one for the first; the starter closes the vote.
    for (const [user, vote] of [
      [bea, firstVotes[1]],
      [cal, firstVotes[1]],
      [ann, firstVotes[0]],
    ] as const) {
      const answer = await server.clickButton(guild, thread, user, first.id, vote?.custom_id ?? "").response();
      expect(answer.type, seen()).toBe(7);
    }
    const close = buttonsOf(first).find((b) => b.custom_id?.startsWith("ink:x:"))?.custom_id ?? "";
    expect((await server.clickButton(guild, thread, ann, first.id, close).response()).type).toBe(7);
    expect(server.message(first.id)?.content, seen()).toMatch(/^The readers chose: “.+” \(2 of 3 votes\)\.\n/);
    const second = await discord
      .waitFor(() => ballotIn(server, thread.id, first.id), TURN_MS)
      .catch((error: unknown) => {
        throw new Error(`no ballot after chapter 2: ${String(error)}\n${seen()}`);
      });
    expect(votesOf(second).length, seen()).toBeGreaterThanOrEqual(2);

    const all = messages();
    const chapters = await expectTwoLocalChapters(engine.db, seen);
    // Chapter 2 follows the winning choice, the second one offered.
    const offered = await engine.db.choice.findMany({
      where: { chapterId: chapters[0]?.id ?? "" },
      orderBy: { position: "asc" },
    });
    expect(offered.length).toBe(firstVotes.length);
    expect(chapters[1]?.action).toBe(offered[1]?.label);

    for (const chapter of chapters) {
      // One message opens the chapter with its heading, posted once.
      const heading = new RegExp(`^Chapter ${chapter.number}(?!\\d)`);
      const opening = all.filter((m) => heading.test(m.content));
      expect(opening, seen()).toHaveLength(1);
      const start = opening[0] as FakeMessage;
      // Then the chapter's messages and nothing else, up to its ballot: what the readers see is
      // the chapter as stored (split only where it is longer than a message).
      const ballot = chapter.number === 1 ? first : second;
      expect(newer(ballot, start)).toBe(true);
      const body = all.filter((m) => !newer(start, m) && newer(ballot, m));
      expect(squeeze(body.map((m) => m.content).join("")), seen()).toBe(
        squeeze(`Chapter ${chapter.number}${chapter.text}`),
      );
      expect(squeeze(chapter.text)).not.toBe("");
      // Streamed: posted with its first words, then edited as the rest came, every version of
      // every message a piece of the chapter from where that message starts.
      expect(start.contentHistory[0]).toMatch(heading);
      expect(
        body.reduce((n, m) => n + m.edits, 0),
        seen(),
      ).toBeGreaterThan(0);
      for (const [i, m] of body.entries()) {
        const rest = squeeze(
          body
            .slice(i)
            .map((b) => b.content)
            .join(""),
        );
        for (const version of m.contentHistory) expect(rest.startsWith(squeeze(version)), seen()).toBe(true);
      }
    }

    // One ballot per chapter: chapter 1's closed with its result (its rating row stays),
    // chapter 2's open.
    const ballots = all.filter((m) => buttonsOf(m).some((b) => b.custom_id?.startsWith("ink:u:")));
    expect(ballots.map((m) => m.id)).toEqual([first.id, second.id]);
    expect(votesOf(server.message(first.id))).toEqual([]);
    expect(all.filter((m) => votesOf(m).length > 0).map((m) => m.id)).toEqual([second.id]);

    // No message twice, none over Discord's limits, nothing Discord could not carry; no error
    // notice, no Try again button, no refused call, nothing logged as failing.
    const contents = all.map((m) => m.content);
    expectCarriable(
      [...all.flatMap((m) => m.contentHistory), ...all.flatMap((m) => buttonsOf(m).map((b) => b.label))],
      MAX_CONTENT,
    );
    for (const label of all.flatMap((m) => buttonsOf(m).map((b) => b.label ?? ""))) {
      expect(label.length).toBeLessThanOrEqual(MAX_LABEL);
    }
    expect(all.flatMap((m) => buttonsOf(m)).filter((b) => b.custom_id?.startsWith("ink:r:"))).toEqual([]);
    expectNoFailure(contents, server.calls, logs, seen);
  });
});

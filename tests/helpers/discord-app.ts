/** The whole Discord bot (engine + discord.js adapter) against fakes, and reading its ballots, for e2e tests. */
import { DiscordAdapter } from "../../adapters/discord/discord-adapter.ts";
import type { FakeDiscordServer, FakeMessage } from "../fakes/fake-discord-server.ts";
import type { FakeOpenAiServer } from "../fakes/fake-openai-server.ts";
import { launchTestFront, stopTestFront, type TestFront } from "./topology.ts";

export type DiscordApp = TestFront<DiscordAdapter>;

/**
 * Engine and adapter configured from the environment `npm start` would see, logged in.
 * With REDIS_URL in `extra` (tests/helpers/topology.ts queueEnv), it is the front only and
 * two worker processes write the chapters. The caller stops all three (stopDiscordApp).
 *
 * Without `fakes.model` the environment names no endpoint (no OPENAI_* at all): `extra`
 * says which model serves the stories (LOCAL_MODEL, tests/helpers/local-terminal.ts).
 */
export async function launchDiscordApp(
  fakes: { model?: FakeOpenAiServer; discord: FakeDiscordServer },
  /** DATABASE_URL of the test's database (tests/helpers/database.ts). */
  databaseUrl: string,
  log: (message: string) => void,
  extra: Record<string, string> = {},
): Promise<DiscordApp> {
  const { model, discord } = fakes;
  const env = {
    ...(model === undefined ? {} : { OPENAI_BASE_URL: model.baseUrl, OPENAI_MODEL: "fake", OPENAI_MAX_RETRIES: "0" }),
    DATABASE_URL: databaseUrl,
    DISCORD_TOKEN: discord.token,
    DISCORD_APPLICATION_ID: discord.applicationId,
    DISCORD_API_ROOT: discord.apiRoot,
    INKLOOM_LOCALE: "en",
    ...extra,
  };
  return launchTestFront(env, log, (config, engine) => {
    if (config.discord === undefined) throw new Error("discord not configured");
    return new DiscordAdapter(config.discord, { ...engine, log });
  });
}

/** Stop what launchDiscordApp started: the platform first, then the engine and the workers. */
export const stopDiscordApp = stopTestFront;

export type Button = { custom_id?: string; label?: string };

/** The buttons of a message, row after row. */
export const buttonsOf = (m: Pick<FakeMessage, "components"> | undefined): Button[] =>
  ((m?.components ?? []) as { components?: Button[] }[]).flatMap((row) => row.components ?? []);

/** The newest live ballot (a message with vote buttons) in a channel, newer than message `after`. */
export const ballotIn = (discord: FakeDiscordServer, channelId: string, after = "0") =>
  discord
    .messages(channelId)
    .filter((m) => !m.deleted && BigInt(m.id) > BigInt(after))
    .findLast((m) => buttonsOf(m).some((b) => b.custom_id?.startsWith("ink:v:")));

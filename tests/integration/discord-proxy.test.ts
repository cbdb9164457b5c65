/**
 * `npm run discord:proxy` (@discordjs/proxy in front of the fake Discord): several REST
 * clients, as several processes of the bot have, share one budget through it.
 */
import { DiscordAPIError, REST, Routes } from "discord.js";
import { afterEach, describe, expect, it } from "vitest";
import { type DiscordProxy, startDiscordProxy } from "../../adapters/discord/proxy.ts";
import { FakeDiscordServer } from "../fakes/fake-discord-server.ts";

let discord: FakeDiscordServer | undefined;
let proxy: DiscordProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await discord?.close();
  discord = undefined;
});

async function setup(options: Parameters<typeof FakeDiscordServer.start>[0] = {}) {
  const fake = await FakeDiscordServer.start(options);
  discord = fake;
  const started = await startDiscordProxy({ upstream: fake.apiRoot, port: 0, host: "127.0.0.1", token: fake.token });
  proxy = started;
  /** A process of the bot: its own REST client, pointed at the proxy (DISCORD_API_ROOT). */
  const process = (api = started.apiRoot) => new REST({ api }).setToken(fake.token);
  return { fake, proxy: started, process };
}

/** Arrival times at the fake, the first one at 0. */
const arrivals = (fake: FakeDiscordServer, method: string) => {
  const times = fake.calls.filter((c) => c.method === method).map((c) => c.at);
  const first = Math.min(...times);
  return times.map((t) => t - first);
};

describe("the Discord REST proxy", { timeout: 30_000 }, () => {
  it("forwards requests with their token and answers as Discord does, errors included", async () => {
    const { fake, proxy, process } = await setup();
    const guild = fake.guild();
    const channel = fake.textChannel(guild);
    const rest = process();
    const sent = (await rest.post(Routes.channelMessages(channel.id), { body: { content: "hello" } })) as {
      id: string;
    };
    await rest.patch(Routes.channelMessage(channel.id, sent.id), { body: { content: "hello again" } });
    expect(fake.message(sent.id)?.content).toBe("hello again");
    const missing = await rest.get(Routes.channel("123456789012345678")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(DiscordAPIError);
    expect(missing).toMatchObject({ status: 404, code: 10003 });
    // A 429 is waited out by the proxy, for whichever process asked.
    fake.failNext("POST /channels/:channel/messages", { retryAfter: 0.2 });
    await rest.post(Routes.channelMessages(channel.id), { body: { content: "after a 429" } });
    expect(fake.calls.filter((c) => c.status === 429)).toHaveLength(1);
    // Sent again by the proxy with its body (a streamed body would have gone out empty).
    expect(fake.messages(channel).map((m) => m.content)).toEqual(["hello again", "after a 429"]);
    expect(proxy.forwarded).toBe(fake.calls.length - 1);
  });

  it("refuses another bot's token: one proxy, one bot's budget", async () => {
    const { fake, proxy } = await setup();
    const stranger = new REST({ api: proxy.apiRoot, retries: 0 }).setToken("another.bot.token");
    await expect(stranger.get(Routes.gatewayBot())).rejects.toMatchObject({ status: 401 });
    expect(fake.calls).toEqual([]);
  });

  it("two processes share one global budget of 50 requests/s through it (each alone would send 50/s)", async () => {
    const { fake, process } = await setup();
    const guild = fake.guild();
    // One channel per request: no per-route bucket holds them back, only the global limit.
    const channels = Array.from({ length: 80 }, () => fake.textChannel(guild));
    const burst = (clients: REST[]) =>
      Promise.all(
        channels.map((c, i) =>
          (clients[i % clients.length] as REST).post(Routes.channelMessages(c.id), { body: { content: `m${i}` } }),
        ),
      );

    // Control: two processes straight to Discord each keep their own 50/s, so 80 go out at once.
    await burst([process(fake.apiRoot), process(fake.apiRoot)]);
    expect(arrivals(fake, "POST").filter((t) => t < 500).length).toBeGreaterThan(50);

    fake.calls.length = 0;
    // Through the proxy: at most 50 in the first second, the rest in the next.
    await burst([process(), process()]);
    const times = arrivals(fake, "POST");
    expect(times).toHaveLength(80);
    expect(times.filter((t) => t < 500).length).toBeLessThanOrEqual(50);
    expect(Math.max(...times)).toBeGreaterThanOrEqual(900);
  });

  it("two processes writing into one channel share its route bucket: no 429 reaches Discord", async () => {
    const { fake, process } = await setup({
      rateLimits: [{ route: "POST /channels/:channel/messages", limit: 3, windowMs: 1000 }],
    });
    const channel = fake.textChannel(fake.guild());
    const [front, worker] = [process(), process()];
    // The first request teaches the proxy the bucket; then both processes write at once.
    await front.post(Routes.channelMessages(channel.id), { body: { content: "first" } });
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 === 0 ? front : worker).post(Routes.channelMessages(channel.id), { body: { content: `m${i}` } }),
      ),
    );
    expect(fake.messages(channel)).toHaveLength(9);
    expect(fake.calls.filter((c) => c.status === 429)).toEqual([]);
  });
});

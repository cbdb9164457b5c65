import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, loadDiscordProxyConfig } from "../../src/app/config.ts";

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe("loadConfig", () => {
  it("with no endpoint at all, explains what to set with an Ollama example", () => {
    const [help] = problems({});
    expect(help).toContain("OPENAI_BASE_URL");
    expect(help).toContain("http://localhost:11434/v1");
  });

  it("a local endpoint without a model name asks for OPENAI_MODEL", () => {
    expect(problems({ OPENAI_BASE_URL: "http://localhost:11434/v1" })[0]).toContain("OPENAI_MODEL is not set");
  });

  it("OpenAI with only a key gets a default model and the official endpoint", () => {
    const config = loadConfig({ OPENAI_API_KEY: "sk-test" });
    expect(config.models.open).toEqual({
      model: "gpt-4.1-mini",
      baseUrl: "https://api.openai.com/v1",
      fineTuned: false,
    });
  });

  it("routes each task to its own model when set, the default otherwise", () => {
    const config = loadConfig({
      OPENAI_BASE_URL: "http://127.0.0.1:8000/v1",
      OPENAI_MODEL: "big",
      MODEL_CONTINUE: "small-ft",
    });
    expect(config.models.continue.model).toBe("small-ft");
    expect(config.models.open.model).toBe("big");
    expect(config.apiKey).toBe("not-needed");
  });

  it("names every bad variable at once", () => {
    const found = problems({
      OPENAI_BASE_URL: "localhost:11434",
      OPENAI_MODEL: "m",
      OPENAI_MAX_RETRIES: "-1",
      METHOD_OPEN: "tree",
      DATABASE_URL: "mysql://x",
      INKLOOM_LOCALE: "fr",
    });
    expect(found).toHaveLength(5);
    for (const name of ["OPENAI_BASE_URL", "OPENAI_MAX_RETRIES", "METHOD_OPEN", "DATABASE_URL", "INKLOOM_LOCALE"]) {
      expect(found.some((p) => p.startsWith(name))).toBe(true);
    }
  });

  it("takes a SQLite file or a PostgreSQL database as DATABASE_URL", () => {
    const base = { OPENAI_API_KEY: "k" };
    expect(loadConfig(base).databaseUrl).toBe("file:./data/inkloom.db");
    for (const url of ["file:/var/lib/inkloom.db", "postgresql://bot:pw@db:5432/inkloom", "postgres://db/inkloom"]) {
      expect(loadConfig({ ...base, DATABASE_URL: url }).databaseUrl).toBe(url);
    }
  });

  it("takes the interface language from INKLOOM_LOCALE, else from LANG", () => {
    const base = { OPENAI_API_KEY: "k" };
    expect(loadConfig({ ...base, LANG: "zh_CN.UTF-8" }).locale).toBe("zh");
    expect(loadConfig({ ...base, LANG: "zh_CN.UTF-8", INKLOOM_LOCALE: "en" }).locale).toBe("en");
    expect(loadConfig(base).locale).toBe("en");
  });

  it("reads HEALTH_PORT and SHUTDOWN_GRACE_SECONDS, and names a bad value", () => {
    const base = { OPENAI_API_KEY: "k" };
    expect(loadConfig(base).healthPort).toBeUndefined();
    expect(loadConfig(base).shutdownGraceMs).toBe(30_000);
    expect(loadConfig({ ...base, HEALTH_PORT: "8080", SHUTDOWN_GRACE_SECONDS: "90" })).toMatchObject({
      healthPort: 8080,
      shutdownGraceMs: 90_000,
    });
    expect(problems({ ...base, HEALTH_PORT: "99999" })).toEqual([
      expect.stringContaining("HEALTH_PORT must be a whole number from 1 to 65535"),
    ]);
  });

  it("shares state between processes through REDIS_URL when set; a URL that is not Redis's is named", () => {
    expect(loadConfig({ OPENAI_API_KEY: "k" }).redis).toBeUndefined();
    expect(loadConfig({ OPENAI_API_KEY: "k", REDIS_URL: "redis://cache:6379/2" }).redis?.url).toBe(
      "redis://cache:6379/2",
    );
    expect(problems({ OPENAI_API_KEY: "k", REDIS_URL: "localhost:6379" })).toEqual([
      expect.stringContaining("REDIS_URL must be a redis:// or rediss:// URL"),
    ]);
  });

  it("treats empty variables as unset", () => {
    const config = loadConfig({ OPENAI_API_KEY: "k", OPENAI_TIMEOUT_MS: "", METHOD_CONTINUE: "" });
    expect(config.timeoutMs).toBe(60_000);
    expect(config.methods.continue).toBe("react");
  });

  it("runs jobs in this process without REDIS_URL, and on Redis with it, WORKER_CONCURRENCY chapters per worker", () => {
    const base = { OPENAI_API_KEY: "sk-test" };
    expect(loadConfig(base).redis).toBeUndefined();
    expect(loadConfig({ ...base, REDIS_URL: "redis://localhost:6379", JOB_CONCURRENCY: "8" }).redis).toEqual({
      url: "redis://localhost:6379",
      prefix: "inkloom",
      workerConcurrency: 8,
    });
    const config = loadConfig({
      ...base,
      REDIS_URL: "rediss://:pw@redis.example:6380/2",
      REDIS_PREFIX: "inkloom-staging",
      WORKER_CONCURRENCY: "16",
    });
    expect(config.redis).toEqual({
      url: "rediss://:pw@redis.example:6380/2",
      prefix: "inkloom-staging",
      workerConcurrency: 16,
    });
    const bad = problems({ ...base, REDIS_URL: "localhost:6379", REDIS_PREFIX: "a:b", WORKER_CONCURRENCY: "0" });
    expect(bad.map((p) => p.split(" ")[0])).toEqual(["REDIS_URL", "REDIS_PREFIX", "WORKER_CONCURRENCY"]);
  });

  it("illustrates only with IMAGE_MODEL; images may use their own endpoint and key", () => {
    const base = { OPENAI_BASE_URL: "http://text.local/v1", OPENAI_MODEL: "m", OPENAI_API_KEY: "text-key" };
    expect(loadConfig(base).images).toBeUndefined();
    expect(loadConfig({ ...base, IMAGE_MODEL: "gpt-image-1" }).images).toEqual({
      model: "gpt-image-1",
      baseUrl: "http://text.local/v1",
      apiKey: "text-key",
      size: "1024x1024",
      timeoutMs: 120_000,
    });
    const own = loadConfig({
      ...base,
      IMAGE_MODEL: "flux",
      IMAGE_BASE_URL: "http://images.local/v1",
      IMAGE_API_KEY: "image-key",
      IMAGE_SIZE: "512x768",
      IMAGES_PER_CHAPTER: "2",
      IMAGES_PER_DAY: "5",
      ILLUSTRATE_COOLDOWN_SECONDS: "0",
      IMAGE_DIR: "/srv/pictures",
    });
    expect(own.images).toMatchObject({ baseUrl: "http://images.local/v1", apiKey: "image-key", size: "512x768" });
    expect([own.imagesPerChapter, own.imagesPerDay, own.illustrateCooldownSeconds, own.imageDir]).toEqual([
      2,
      5,
      0,
      "/srv/pictures",
    ]);
    const bad = problems({ ...base, IMAGE_SIZE: "big", IMAGES_PER_CHAPTER: "9", IMAGE_BASE_URL: "images.local" });
    expect(bad.map((p) => p.split(" ")[0])).toEqual(["IMAGE_BASE_URL", "IMAGE_SIZE", "IMAGES_PER_CHAPTER"]);
  });

  it("Discord shards: auto by default, or a count and the ids this process runs", () => {
    const base = { OPENAI_API_KEY: "k", DISCORD_TOKEN: "t", DISCORD_APPLICATION_ID: "123456" };
    expect(loadConfig(base).discord?.shards).toBe("auto");
    expect(loadConfig({ ...base, SHARD_COUNT: "auto" }).discord?.shards).toBe("auto");
    expect(loadConfig({ ...base, SHARD_COUNT: "4" }).discord?.shards).toEqual({ count: 4 });
    expect(loadConfig({ ...base, SHARD_COUNT: "8", SHARD_IDS: "4-5, 7" }).discord?.shards).toEqual({
      count: 8,
      ids: [4, 5, 7],
    });
    expect(problems({ ...base, SHARD_COUNT: "0" })[0]).toMatch(/^SHARD_COUNT must be auto/);
    expect(problems({ ...base, SHARD_COUNT: "many" })[0]).toMatch(/^SHARD_COUNT must be auto/);
    expect(problems({ ...base, SHARD_IDS: "0-1" })).toEqual([
      "SHARD_IDS needs a SHARD_COUNT: the total number of shards",
    ]);
    expect(problems({ ...base, SHARD_COUNT: "2", SHARD_IDS: "1-2" })[0]).toMatch(
      /^SHARD_IDS must be shards from 0 to 1/,
    );
  });

  it("the Discord REST proxy needs no model endpoint: where it forwards, its port, the bot's token", () => {
    expect(loadDiscordProxyConfig({})).toEqual({ upstream: "https://discord.com/api", port: 8090 });
    expect(
      loadDiscordProxyConfig({
        DISCORD_API_ROOT: "http://127.0.0.1:9/api",
        DISCORD_PROXY_PORT: "9100",
        DISCORD_TOKEN: "t",
      }),
    ).toEqual({ upstream: "http://127.0.0.1:9/api", port: 9100, token: "t" });
    expect(() => loadDiscordProxyConfig({ DISCORD_PROXY_PORT: "70000" })).toThrow(/DISCORD_PROXY_PORT/);
  });
});

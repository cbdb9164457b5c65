import { describe, expect, it } from "vitest";
import { MemorySessionStore, sessionFromJson, sessionToJson } from "../../commands/session-store.ts";
import type { Session } from "../../commands/types.ts";

describe("sessions between actions", () => {
  it("round-trip through JSON, reply prompts included; unreadable JSON is a new session", () => {
    const session: Session = {
      storyId: "s1",
      hydrated: true,
      ask: { field: "scenario", genre: "horror", by: "7", messageId: "42" },
      replies: new Map([["43", { storyId: "s1", revision: 3 }]]),
    };
    const back = sessionFromJson(sessionToJson(session));
    expect(back).toEqual(session);
    expect(back.replies?.get("43")).toEqual({ storyId: "s1", revision: 3 });
    expect(sessionFromJson("{not json")).toEqual({});
    expect(sessionFromJson(null)).toEqual({});
  });

  it("in memory: one session per conversation, kept between loads", async () => {
    const store = new MemorySessionStore();
    const a = await store.load("1");
    a.storyId = "s";
    expect(await store.load("1")).toBe(a);
    expect(await store.load("2")).toEqual({});
  });
});

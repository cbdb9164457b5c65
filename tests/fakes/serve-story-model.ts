/**
 * `npm run fake-model`: the fake OpenAI-compatible server answering as the
 * deterministic story model of the tests, so Inkloom can be tried with no model
 * at all. Listens on 127.0.0.1:$FAKE_MODEL_PORT (default 4010).
 */
import { FakeOpenAiServer } from "./fake-openai-server.ts";
import { storyResponder } from "./story-responder.ts";

const port = Number(process.env.FAKE_MODEL_PORT ?? 4010);
const server = await FakeOpenAiServer.start({ responder: storyResponder({ language: "zh" }), port });
console.log(`Fake story model at ${server.baseUrl}. In another terminal:`);
console.log(`  OPENAI_BASE_URL=${server.baseUrl} OPENAI_MODEL=fake npm start`);
process.once("SIGINT", () => {
  void server.close().then(() => process.exit(0));
});

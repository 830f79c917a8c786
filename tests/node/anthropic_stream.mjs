// @anthropic-ai/sdk's messages.stream() against clawrap: prints the final message and events.
// Usage: node anthropic_stream.mjs <base url without /v1> <message> [tools]
import Anthropic from "@anthropic-ai/sdk";

const [baseURL, message, withTools] = process.argv.slice(2);
const client = new Anthropic({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 45_000 });

const weather = {
  name: "get_weather",
  description: "Weather for a city",
  input_schema: {
    type: "object",
    properties: { city: { type: "string" }, days: { type: "integer" } },
    required: ["city"],
  },
};

const stream = client.messages.stream({
  model: "sonnet",
  max_tokens: 1024,
  messages: [{ role: "user", content: message }],
  ...(withTools === "tools" ? { tools: [weather] } : {}),
});

const events = [];
const texts = [];
stream.on("text", (text) => texts.push(text));
for await (const event of stream) events.push(event.type);
const final = await stream.finalMessage();
console.log(
  JSON.stringify({
    events,
    texts,
    content: final.content,
    stop_reason: final.stop_reason,
    usage: final.usage,
  }),
);

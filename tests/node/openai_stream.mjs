// openai-node's ChatCompletionStream against clawrap: prints what the client made of the stream.
// Usage: node openai_stream.mjs <base url ending in /v1> <message> [tools]
import OpenAI from "openai";

const [baseURL, message, withTools] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 45_000 });

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: "string" } },
      required: ["city"],
    },
  },
};

const stream = client.chat.completions.stream({
  model: "sonnet",
  messages: [{ role: "user", content: message }],
  ...(withTools === "tools" ? { tools: [weather] } : {}),
});

const deltas = [];
const argumentsDone = [];
let roles = 0;
let chunks = 0;
stream.on("content.delta", ({ delta }) => deltas.push(delta));
stream.on("tool_calls.function.arguments.done", ({ name, index, arguments: raw }) =>
  argumentsDone.push({ index, name, arguments: JSON.parse(raw) }),
);
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.choices[0]?.delta?.role) roles += 1;
}
const final = await stream.finalChatCompletion();
const choice = final.choices[0];
console.log(
  JSON.stringify({
    chunks,
    roles,
    deltas,
    content: choice.message.content,
    finish_reason: choice.finish_reason,
    tool_calls: (choice.message.tool_calls ?? []).map((c) => ({
      id: c.id,
      type: c.type,
      name: c.function.name,
      arguments: JSON.parse(c.function.arguments),
    })),
    arguments_done: argumentsDone,
  }),
);

// openai-node's ResponseStream against clawrap: prints what the client made of the stream.
// Its accumulator is the strictest: unknown events, duplicate ids and lifecycle events whose
// output is shorter than what was streamed all throw.
// Usage: node openai_responses.mjs <base url ending in /v1> <input> [tools]
import OpenAI from "openai";

const [baseURL, input, withTools] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 45_000 });

const weather = {
  type: "function",
  name: "get_weather",
  description: "Weather for a city",
  parameters: {
    type: "object",
    properties: { city: { type: "string" } },
    required: ["city"],
    additionalProperties: false,
  },
  strict: true,
};

const stream = client.responses.stream({
  model: "sonnet",
  input,
  ...(withTools === "tools" ? { tools: [weather] } : {}),
});

const types = [];
const deltas = [];
const argumentsDone = [];
stream.on("response.output_text.delta", (event) => deltas.push(event.delta));
stream.on("response.function_call_arguments.done", (event) =>
  argumentsDone.push(JSON.parse(event.arguments)),
);
for await (const event of stream) types.push(event.type);
const final = await stream.finalResponse();
console.log(
  JSON.stringify({
    types,
    deltas,
    output_text: final.output
      .filter((item) => item.type === "message")
      .flatMap((m) => m.content.map((part) => part.text))
      .join(""),
    status: final.status,
    calls: final.output
      .filter((item) => item.type === "function_call")
      .map((c) => ({ call_id: c.call_id, name: c.name, arguments: JSON.parse(c.arguments) })),
    arguments_done: argumentsDone,
  }),
);

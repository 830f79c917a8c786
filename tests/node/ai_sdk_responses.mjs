// The Vercel AI SDK's openai(id) provider (Responses API) against clawrap: streamText with a
// tool the SDK runs itself, looping until stopWhen, then prints what the SDK made of it.
// Usage: node ai_sdk_responses.mjs <base url ending in /v1> <prompt>
import { createOpenAI } from "@ai-sdk/openai";
import { jsonSchema, stepCountIs, streamText, tool } from "ai";

const [baseURL, prompt] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey: "unused" });
const calls = [];

const result = streamText({
  model: openai("sonnet"),
  prompt,
  maxRetries: 0,
  stopWhen: stepCountIs(3),
  tools: {
    get_weather: tool({
      description: "Weather for a city",
      inputSchema: jsonSchema({
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
        additionalProperties: false,
      }),
      execute: async ({ city }) => {
        calls.push(city);
        return `cloudy in ${city}`;
      },
    }),
  },
});

const deltas = [];
for await (const part of result.textStream) deltas.push(part);
const steps = await result.steps;
console.log(
  JSON.stringify({
    text: await result.text,
    deltas,
    calls,
    steps: steps.length,
    finish_reason: await result.finishReason,
  }),
);

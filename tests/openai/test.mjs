// test.mjs - the official openai npm client against `vkmoe serve` (run by tests/cli_openai.sh):
// a non-streamed chat, the same chat streamed, a completion, and a refused request (its status
// and message as the SDK reports them). Prints the texts as one JSON object; the shell compares
// them with `vkmoe run`.
// usage: node test.mjs BASE_URL API_KEY
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, timeout: 120000, maxRetries: 0 });
const messages = [{ role: "user", content: "Hello" }];

const chat = await client.chat.completions.create({
  model: "tiny", messages, max_tokens: 12, temperature: 0,
});
const stream = await client.chat.completions.create({
  model: "tiny", messages, max_tokens: 12, temperature: 0, stream: true,
  stream_options: { include_usage: true },
});
let streamed = "", usage = null, finish = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  const c = chunk.choices[0];
  if (!c) continue;
  streamed += c.delta?.content ?? "";
  if (c.finish_reason) finish = c.finish_reason;
}
const completion = await client.completions.create({
  model: "tiny", prompt: "Hello", max_tokens: 10, temperature: 0,
});
let refused = null;
try {
  await client.chat.completions.create({ model: "tiny", messages, n: 2 });
} catch (e) {
  refused = { status: e.status, message: e.message };
}
console.log(JSON.stringify({
  chat: chat.choices[0].message.content,
  chat_finish: chat.choices[0].finish_reason,
  chat_usage: chat.usage,
  streamed, stream_finish: finish, stream_usage: usage,
  completion: completion.choices[0].text,
  refused,
}));

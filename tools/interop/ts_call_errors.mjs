// The TypeScript SDK's client (as Claude Code, Claude Desktop and the Inspector use it) calling tools over
// stdio: prints, per call, whether it came back as a result (and its text) or was thrown by the client.
// usage: node ts_call_errors.mjs SDK_DIR COMMAND [ARGS...] -- '[name, {arguments}]' ...
const [sdk, ...rest] = process.argv.slice(2);
const split = rest.indexOf("--");
const [command, ...args] = rest.slice(0, split);
const calls = rest.slice(split + 1).map((c) => JSON.parse(c));
const { Client } = await import(`${sdk}/dist/esm/client/index.js`);
const { StdioClientTransport } = await import(`${sdk}/dist/esm/client/stdio.js`);
const client = new Client({ name: "ts-call-errors", version: "1" });
await client.connect(new StdioClientTransport({ command, args, env: process.env, stderr: "ignore" }));
const tools = (await client.listTools()).tools;
const out = [];
for (const [name, argumentsGiven] of calls) {
  const declares = !!tools.find((t) => t.name === name)?.outputSchema;
  try {
    const result = await client.callTool({ name, arguments: argumentsGiven });
    out.push({ name, declares, thrown: null, isError: !!result.isError, text: result.content?.[0]?.text ?? "" });
  } catch (e) {
    out.push({ name, declares, thrown: String(e.message).slice(0, 300) });
  }
}
console.log(JSON.stringify(out));
await client.close();

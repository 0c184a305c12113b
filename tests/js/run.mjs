// Runs one scenario of scenarios.mjs in Node.js and prints its result as JSON.
// Usage: node run.mjs WYRE_JS SCENARIO URL ARGS_JSON
import { pathToFileURL } from "node:url";

const [modulePath, name, url, args] = process.argv.slice(2);
const wyre = await import(pathToFileURL(modulePath).href);
const scenarios = await import(new URL("./scenarios.mjs", import.meta.url).href);
try {
  const result = await scenarios[name](wyre, url, JSON.parse(args));
  process.stdout.write(`${JSON.stringify({ result })}\n`);
} catch (error) {
  process.stdout.write(`${JSON.stringify({ error: `${error && error.stack}` })}\n`);
}
process.exit(0);

#!/usr/bin/env node
/**
 * Runs componentize-js (the one on the PATH) with the same arguments, with
 * two changes to the bindings it generates: how a string is copied into the
 * component's memory, and how an export waits for the plugin's function.
 *
 *     node componentize.mjs --wit wit -n handler -o app.wasm app.js
 *
 * componentize-js 0.23.0 sizes every string it hands to the host (an
 * emitted event's `data`, its type, state keys, the arguments of every
 * import) by walking it one character at a time in JavaScript, before the
 * copy. In a plugin that walk costs about 0.17 µs a character: a 400-character
 * emit took 110-130 µs per event against 57-64 with the copy below
 * (BENCHMARKS.md, P8). Here `TextEncoder.encode` (SpiderMonkey's C++) sizes
 * and encodes the string at once, then it is copied in; the bytes written
 * are the same (a lone surrogate becomes U+FFFD either way).
 *
 * A second, smaller change: an export awaited the plugin's `handle` (or
 * `onTimer`) even when it returned a plain value, which costs a trip through
 * the job queue on every call; now it awaits only a promise (or any
 * thenable), as `await` would have resolved it. The SDK's handlers return
 * plain values (a median 150 against 174 µs per event for the receipt
 * plugin in eight rounds, BENCHMARKS.md, P8).
 *
 * Both are made to the bindings' text as componentize-js writes it for the
 * engine to load. If a later componentize-js generates code of another
 * shape, nothing is changed and a warning says so: the plugin still builds,
 * just slower. With `SWITCHYARD_STRICT_BINDINGS=1` (the repository's builds
 * and tests) that is an error instead.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { existsSync, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const NAME = 'function _utf8AllocateAndEncode(s, realloc, memory) {';
const FAST = `${NAME}
  if (typeof s !== 'string') {
    throw new TypeError('expected a string, received [' + typeof s + ']');
  }
  if (s.length === 0) { return { ptr: 1, len: 0 }; }
  const bytes = TEXT_ENCODER_UTF8.encode(s);
  const len = bytes.length;
  const ptr = realloc(0, 0, 1, len);
  new Uint8Array(memory.buffer, ptr, len).set(bytes);
  return { ptr, len };
}
`;

/** An export's call of the plugin's function, which it always awaits. */
const AWAIT = /const (hostRet\d+) = await (handle|onTimer)\((\{[\s\S]*?\n[ \t]*\})\);/g;

/** `bindings` with both changes, or unchanged with a warning. */
function faster(bindings) {
  const start = bindings.indexOf(NAME);
  const end = start < 0 ? -1 : bindings.indexOf('\n}\n', start);
  const awaits = bindings.match(AWAIT)?.length ?? 0;
  if (start < 0 || end < 0 || awaits === 0 || !bindings.includes('const TEXT_ENCODER_UTF8 = new TextEncoder();')) {
    const why = 'componentize.mjs: this componentize-js writes its bindings differently; left as they are';
    if (process.env.SWITCHYARD_STRICT_BINDINGS === '1') throw new Error(why);
    console.warn(why);
    return bindings;
  }
  bindings = bindings.slice(0, start) + FAST + bindings.slice(end + 3);
  return bindings.replace(AWAIT, (_, ret, fn, args) =>
    `let ${ret} = ${fn}(${args});\n    if (typeof ${ret}?.then === 'function') ${ret} = await ${ret};`);
}

/** componentize-js's command-line script, found on the PATH. */
function cliOnPath() {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const bin = join(dir, 'componentize-js');
    if (dir && existsSync(bin)) return realpathSync(bin);
  }
  console.error('componentize.mjs: componentize-js is not on the PATH; install it with `npm install -g @bytecodealliance/componentize-js@0.23.0`');
  process.exit(2);
}

const cli = cliOnPath();
// componentize-js writes the bindings to `initializer.js` with
// fs/promises' writeFile; its module imports it by name, so the builtin's
// exports are synced after the swap.
const fs = createRequire(import.meta.url)('fs/promises');
const writeFile = fs.writeFile;
fs.writeFile = (path, data, ...rest) =>
  writeFile(path, String(path).endsWith('initializer.js') && typeof data === 'string' ? faster(data) : data, ...rest);
syncBuiltinESMExports();
process.argv = [process.argv[0], cli, ...process.argv.slice(2)];
await import(pathToFileURL(cli).href);

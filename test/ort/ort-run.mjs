// ort-run.mjs - runs an ONNX model with ONNX Runtime (npm onnxruntime-node) on
// .npy inputs and writes its outputs as .npy, so tests can check the files qfx
// exports against a real client.
//
//   node ort-run.mjs --model m.onnx --input <name>=<file.npy> [...]
//                    --output-dir DIR [--optimized-model out.onnx]
//                    [--threads N] [--bench ITER] [--warmup W] [--info]
//                    [--ort-dir PREFIX]
//
// PREFIX is the folder scripts/install-ort.sh installed into (it holds
// node_modules/onnxruntime-node); --ort-dir, else $QFX_ORT_DIR, else the
// repository's .deps/ort. Every output is written as DIR/<name>.npy with the
// name sanitized (characters outside [A-Za-z0-9._-] become '_'), and
// DIR/outputs.json lists {"name", "file"} in the model's output order.
// --bench ITER runs ITER more times after W warm-up runs (default 3) and prints
// one JSON line: {"iterations", "threads", "runs_ms", "median_ms"}.
// --info prints one JSON line with the model's inputs and outputs and exits.
// --worker (no --model) serves qfx-bench: one JSON command per stdin line, one
// JSON reply per stdout line, sessions and inputs kept between commands:
//   {"cmd":"load","model":F,"threads":T}  creates F's session for T threads
//   {"cmd":"run","model":F,"threads":T,"input":X.npy,"n":N,"warmup":W,"max_ms":L}
//       W untimed then N timed runs of the model's one input X (fewer once
//       L ms have passed, if L is not 0): {"runs_ms":[...]}
//   {"cmd":"quit"}
// A failed command replies {"error":"<message>"} and the worker goes on.
// Any error prints "ort-run: error: <message>" and exits with status 1.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';

class UsageError extends Error {}

function fail(message) {
  throw new UsageError(message);
}

const USAGE =
  'usage: node ort-run.mjs --model m.onnx --input <name>=<file.npy> [...] ' +
  '--output-dir DIR [--optimized-model out.onnx] [--threads N] ' +
  '[--bench ITER] [--warmup W] [--info] [--ort-dir PREFIX]\n' +
  '       node ort-run.mjs --worker [--ort-dir PREFIX]';

function parseCount(flag, text, min) {
  if (!/^[0-9]+$/.test(text) || Number(text) < min || Number(text) > 1e6)
    fail(`${flag}: expected an integer >= ${min}, got '${text}'`);
  return Number(text);
}

function parseArgs(argv) {
  const opts = { inputs: [], threads: 0, bench: 0, warmup: 3, info: false, worker: false };
  for (let i = 0; i < argv.length; ++i) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) fail(`${arg}: missing value`);
      return argv[++i];
    };
    switch (arg) {
      case '--model': opts.model = next(); break;
      case '--output-dir': opts.outputDir = next(); break;
      case '--optimized-model': opts.optimizedModel = next(); break;
      case '--ort-dir': opts.ortDir = next(); break;
      case '--threads': opts.threads = parseCount(arg, next(), 0); break;
      case '--bench': opts.bench = parseCount(arg, next(), 1); break;
      case '--warmup': opts.warmup = parseCount(arg, next(), 0); break;
      case '--info': opts.info = true; break;
      case '--worker': opts.worker = true; break;
      case '--input': {
        const spec = next();
        // The first '=' splits: ONNX names rarely hold one, paths may.
        const at = spec.indexOf('=');
        if (at <= 0 || at === spec.length - 1)
          fail(`--input: expected <name>=<file.npy>, got '${spec}'`);
        opts.inputs.push({ name: spec.slice(0, at), file: spec.slice(at + 1) });
        break;
      }
      case '--help': case '-h':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
        break;
      default:
        fail(`unknown argument '${argv[i]}'\n${USAGE}`);
    }
  }
  if (opts.worker) return opts;
  if (!opts.model) fail(`--model is required\n${USAGE}`);
  if (!opts.info && !opts.bench && !opts.outputDir)
    fail(`--output-dir is required (unless --bench or --info)\n${USAGE}`);
  return opts;
}

// ---- .npy reading and writing (format versions 1.0, 2.0 and 3.0) ----

// dtype descr -> ONNX Runtime tensor type, typed array, element size.
const DTYPES = {
  '<f4': { type: 'float32', array: Float32Array, size: 4 },
  '<f8': { type: 'float64', array: Float64Array, size: 8 },
  '|u1': { type: 'uint8', array: Uint8Array, size: 1 },
  '|i1': { type: 'int8', array: Int8Array, size: 1 },
  '<i4': { type: 'int32', array: Int32Array, size: 4 },
  '<i8': { type: 'int64', array: BigInt64Array, size: 8 },
  '|b1': { type: 'bool', array: Uint8Array, size: 1 },
};
// Byte-order-free spellings numpy also writes for one-byte types.
const DESCR_ALIASES = { '<u1': '|u1', '<i1': '|i1', '<b1': '|b1' };

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

function parseNpy(bytes, name) {
  const bad = (what) => fail(`${name}: ${what}`);
  if (bytes.length < 10 || !bytes.subarray(0, 6).equals(MAGIC))
    bad('not a .npy file (bad magic)');
  const major = bytes[6];
  let headerLen;
  let headerStart;
  if (major === 1) {
    headerLen = bytes.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) bad('truncated header');
    headerLen = bytes.readUInt32LE(8);
    headerStart = 12;
  } else {
    bad(`unsupported .npy format version ${major}.${bytes[7]}`);
  }
  if (headerStart + headerLen > bytes.length) bad('truncated header');
  const header = bytes
    .subarray(headerStart, headerStart + headerLen)
    .toString(major === 3 ? 'utf8' : 'latin1');
  const descrM = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortranM = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!header.trim().startsWith('{') || !descrM || !fortranM || !shapeM)
    bad(`malformed header '${header.trim()}'`);
  if (fortranM[1] === 'True') bad('Fortran order is not supported (save with C order)');
  const descr = DESCR_ALIASES[descrM[1]] || descrM[1];
  const dtype = DTYPES[descr];
  if (!dtype) {
    if (descr.startsWith('>')) bad(`big-endian dtype '${descr}' is not supported`);
    bad(`unsupported dtype '${descr}' (expected one of ${Object.keys(DTYPES).join(', ')})`);
  }
  const dimTexts = shapeM[1].split(',').map((s) => s.trim());
  if (dimTexts.length > 0 && dimTexts[dimTexts.length - 1] === '') dimTexts.pop();
  const dims = dimTexts.map((s) => {
    if (!/^[0-9]+$/.test(s)) bad(`malformed shape '(${shapeM[1]})'`);
    return Number(s);
  });
  const count = dims.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLen;
  const expected = count * dtype.size;
  const actual = bytes.length - dataStart;
  if (actual !== expected)
    bad(`data is ${actual} bytes but shape (${dims.join(', ')}) of '${descr}' needs ${expected}`);
  // Copy into an aligned buffer: the file's data offset need not be aligned.
  const data = new dtype.array(count);
  Buffer.from(data.buffer).set(bytes.subarray(dataStart));
  return { type: dtype.type, data: dtype.type === 'bool' ? Array.from(data, (v) => v !== 0) : data, dims };
}

function npyDescr(type) {
  for (const [descr, d] of Object.entries(DTYPES)) if (d.type === type) return descr;
  return undefined;
}

function encodeNpy(tensor, name) {
  const descr = npyDescr(tensor.type);
  if (!descr) fail(`output '${name}': tensor type '${tensor.type}' cannot be written as .npy`);
  const dims = tensor.dims.map(Number);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad so the data starts at a multiple of 64 bytes, header ends with '\n'.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header + ' '.repeat(total - 10 - header.length - 1) + '\n';
  const prefix = Buffer.alloc(10);
  MAGIC.copy(prefix, 0);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  let body;
  if (tensor.type === 'bool') body = Buffer.from(Array.from(tensor.data, (v) => (v ? 1 : 0)));
  else body = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), body]);
}

function sanitize(name) {
  let s = name.replace(/[^A-Za-z0-9._-]/g, '_');
  if (s === '' || s.startsWith('.')) s = '_' + s;
  return s;
}

// ---- ONNX Runtime ----

function loadOrt(opts) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const prefix = opts.ortDir || process.env.QFX_ORT_DIR || path.resolve(here, '../../.deps/ort');
  const pkgJson = path.join(prefix, 'node_modules', 'onnxruntime-node', 'package.json');
  if (!fs.existsSync(pkgJson))
    fail(`onnxruntime-node not found in '${prefix}' (run scripts/install-ort.sh, or pass --ort-dir / QFX_ORT_DIR)`);
  const require = createRequire(path.join(prefix, 'package.json'));
  try {
    return require('onnxruntime-node');
  } catch (e) {
    fail(`cannot load onnxruntime-node from '${prefix}': ${e.message}`);
  }
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}

function sessionOptions(threads) {
  const options = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  };
  // 0 lets ONNX Runtime choose (one thread per physical core).
  if (threads > 0) options.intraOpNumThreads = threads;
  return options;
}

function readNpy(file) {
  let bytes;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    fail(`${file}: cannot read: ${e.message}`);
  }
  return parseNpy(bytes, file);
}

// --worker: the sessions (per model file and thread count) and the inputs
// (per file) stay loaded between commands.
class Worker {
  constructor(ort) {
    this.ort = ort;
    this.sessions = new Map();
    this.inputs = new Map();
  }

  async load(cmd) {
    const key = `${cmd.threads}:${cmd.model}`;
    if (!this.sessions.has(key)) {
      if (typeof cmd.model !== 'string' || !fs.existsSync(cmd.model)) fail(`${cmd.model}: no such file`);
      let session;
      try {
        session = await this.ort.InferenceSession.create(cmd.model, sessionOptions(cmd.threads || 0));
      } catch (e) {
        fail(`${cmd.model}: ONNX Runtime cannot load the model: ${e.message}`);
      }
      if (session.inputNames.length !== 1)
        fail(`${cmd.model}: expected a model with exactly one input, got ${session.inputNames.length}`);
      this.sessions.set(key, session);
    }
    return { inputs: this.sessions.get(key).inputNames };
  }

  async run(cmd) {
    const session = this.sessions.get(`${cmd.threads}:${cmd.model}`);
    if (!session) fail(`${cmd.model}: not loaded for ${cmd.threads} thread(s)`);
    if (!this.inputs.has(cmd.input)) {
      const t = readNpy(cmd.input);
      this.inputs.set(cmd.input, new this.ort.Tensor(t.type, t.data, t.dims));
    }
    const feeds = { [session.inputNames[0]]: this.inputs.get(cmd.input) };
    const once = async () => {
      try {
        await session.run(feeds);
      } catch (e) {
        fail(`${cmd.model}: ONNX Runtime failed to run the model: ${e.message}`);
      }
    };
    for (let i = 0; i < (cmd.warmup ?? 1); ++i) await once();
    const times = [];
    const start = performance.now();
    for (let i = 0; i < cmd.n; ++i) {
      const t0 = performance.now();
      await once();
      times.push(round3(performance.now() - t0));
      if (cmd.max_ms > 0 && performance.now() - start >= cmd.max_ms) break;
    }
    return { runs_ms: times };
  }

  async release() {
    for (const session of this.sessions.values()) await session.release();
    this.sessions.clear();
  }
}

async function serve(opts) {
  const ort = loadOrt(opts);
  const worker = new Worker(ort);
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    let reply;
    try {
      const cmd = JSON.parse(line);
      if (cmd.cmd === 'quit') break;
      if (cmd.cmd === 'load') reply = await worker.load(cmd);
      else if (cmd.cmd === 'run') reply = await worker.run(cmd);
      else fail(`unknown command '${cmd.cmd}'`);
    } catch (e) {
      reply = { error: e instanceof UsageError ? e.message : String(e) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  }
  lines.close();
  await worker.release();
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.worker) return serve(opts);
  const ort = loadOrt(opts);
  if (!fs.existsSync(opts.model)) fail(`${opts.model}: no such file`);

  const options = sessionOptions(opts.threads);
  if (opts.optimizedModel) options.optimizedModelFilePath = path.resolve(opts.optimizedModel);

  let session;
  try {
    session = await ort.InferenceSession.create(opts.model, options);
  } catch (e) {
    fail(`${opts.model}: ONNX Runtime cannot load the model: ${e.message}`);
  }

  if (opts.info) {
    const meta = (list) =>
      list.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: m.shape } : { name: m.name }));
    process.stdout.write(
      JSON.stringify({ inputs: meta(session.inputMetadata), outputs: meta(session.outputMetadata) }) + '\n'
    );
    return;
  }

  const feeds = {};
  for (const { name, file } of opts.inputs) {
    if (!session.inputNames.includes(name))
      fail(`--input ${name}: the model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    if (name in feeds) fail(`--input ${name}: given twice`);
    const t = readNpy(file);
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length) fail(`missing --input for model input(s): ${missing.join(', ')}`);

  const run = async () => {
    try {
      return await session.run(feeds);
    } catch (e) {
      fail(`${opts.model}: ONNX Runtime failed to run the model: ${e.message}`);
    }
  };

  const results = await run();

  if (opts.outputDir) {
    fs.mkdirSync(opts.outputDir, { recursive: true });
    const files = new Map();
    const listing = [];
    for (const name of session.outputNames) {
      const file = sanitize(name) + '.npy';
      if (files.has(file))
        fail(`outputs '${files.get(file)}' and '${name}' both sanitize to '${file}'`);
      files.set(file, name);
      const value = results[name];
      if (!value || value.data === undefined || value.dims === undefined)
        fail(`output '${name}' is not a tensor`);
      fs.writeFileSync(path.join(opts.outputDir, file), encodeNpy(value, name));
      listing.push({ name, file });
    }
    fs.writeFileSync(path.join(opts.outputDir, 'outputs.json'), JSON.stringify(listing, null, 1) + '\n');
  }

  if (opts.bench) {
    for (let i = 0; i < opts.warmup; ++i) await run();
    const times = [];
    for (let i = 0; i < opts.bench; ++i) {
      const t0 = performance.now();
      await run();
      times.push(performance.now() - t0);
    }
    process.stdout.write(
      JSON.stringify({
        iterations: opts.bench,
        threads: opts.threads,
        runs_ms: times.map(round3),
        median_ms: round3(median(times)),
      }) + '\n'
    );
  }
  await session.release();
}

main().catch((e) => {
  const message = e instanceof UsageError ? e.message : e && e.stack ? e.stack : String(e);
  process.stderr.write(`ort-run: error: ${message}\n`);
  process.exitCode = 1;
});

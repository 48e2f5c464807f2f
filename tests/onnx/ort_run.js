// Runs an ONNX model in ONNX Runtime (npm onnxruntime-node, CPU) on one float32 input.
// usage: node ort_run.js ORT_MODULE_DIR MODEL.onnx IN.bin DIMS OUT.bin
//   IN.bin: little-endian float32 values of the graph's first input, DIMS "3,1,28,28";
//   OUT.bin receives the first output's float32 values; its dims are printed as JSON.
// Used by tests/parity/test_onnx.py; exits non-zero (with the runtime's message) on failure.
'use strict';
const fs = require('fs');

async function main() {
  const [ortDir, model, inPath, dimsText, outPath] = process.argv.slice(2);
  if (!outPath) throw new Error('usage: node ort_run.js ORT_DIR MODEL IN.bin DIMS OUT.bin');
  const ort = require(ortDir);
  const dims = dimsText.split(',').map(Number);
  const raw = fs.readFileSync(inPath);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const session = await ort.InferenceSession.create(model, {graphOptimizationLevel: 'disabled'});
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, dims)};
  const out = (await session.run(feeds))[session.outputNames[0]];
  fs.writeFileSync(outPath, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  console.log(JSON.stringify({dims: out.dims, input: session.inputNames[0],
                              output: session.outputNames[0]}));
}

main().catch((e) => {
  console.error(String(e && e.message ? e.message : e));
  process.exit(1);
});

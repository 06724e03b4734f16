// Smoke test for the WebGPU stack itself (Dawn's Node binding + the Vulkan driver), independent of the
// engine: get an adapter and a device, report what the driver gives us, and run one tiny compute shader.
// In CI this runs on Mesa lavapipe (software Vulkan); if it fails, every GPU test after it will too.
import { test } from 'node:test';
import assert from 'node:assert/strict';

// `webgpu` is external to the bundle and is loaded at run time.
const { create, globals } = require('webgpu') as typeof import('webgpu');
Object.assign(globalThis, globals);
// Module-level on purpose: Dawn crashes if the object returned by create() is garbage-collected while in use.
const gpu = create([]);

const N = 1000;
const WG = 64;

async function getDevice(features: GPUFeatureName[] = []): Promise<{ adapter: GPUAdapter; device: GPUDevice }> {
  const adapter = await gpu.requestAdapter();
  assert.ok(
    adapter,
    'no WebGPU adapter: is a Vulkan driver installed? On CPU-only Debian bookworm: ' +
      'apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1',
  );
  const device = await adapter.requestDevice({ requiredFeatures: features });
  device.addEventListener('uncapturederror', (e) => {
    throw new Error(`uncaptured WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`);
  });
  return { adapter, device };
}

async function runElementwise(device: GPUDevice, code: string, input: ArrayBufferView, outBytes: number): Promise<ArrayBuffer> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  assert.deepEqual(errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`), []);

  const a = device.createBuffer({ size: input.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(a, 0, input.buffer, input.byteOffset, input.byteLength);
  const y = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const staging = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });

  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: a } },
      { binding: 1, resource: { buffer: y } },
    ],
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(N / WG));
  pass.end();
  enc.copyBufferToBuffer(y, 0, staging, 0, outBytes);
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  assert.equal(err, null, err?.message);

  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0);
  staging.unmap();
  for (const b of [a, y, staging]) b.destroy();
  return out;
}

test('WebGPU adapter, device and a tiny f32 compute shader', async () => {
  const { adapter, device } = await getDevice();
  const info = adapter.info;
  const l = adapter.limits;
  const report = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: (info as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    subgroupMinSize: (info as { subgroupMinSize?: number }).subgroupMinSize,
    subgroupMaxSize: (info as { subgroupMaxSize?: number }).subgroupMaxSize,
    'shader-f16': adapter.features.has('shader-f16'),
    subgroups: adapter.features.has('subgroups'),
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
  };
  console.log('[gpuSmoke] ' + JSON.stringify(report));

  try {
    const a = new Float32Array(N);
    for (let i = 0; i < N; i++) a[i] = i * 0.5 - 100;
    const code = /* wgsl */ `
      @group(0) @binding(0) var<storage, read> a: array<f32>;
      @group(0) @binding(1) var<storage, read_write> y: array<f32>;
      @compute @workgroup_size(${WG})
      fn main(@builtin(global_invocation_id) gid: vec3u) {
        let i = gid.x;
        if (i < arrayLength(&y)) { y[i] = a[i] * 2.0 + 1.0; }
      }`;
    const y = new Float32Array(await runElementwise(device, code, a, N * 4));
    for (let i = 0; i < N; i++) assert.equal(y[i], a[i] * 2 + 1, `y[${i}]`);
  } finally {
    device.destroy();
  }
});

test('shader-f16 compute (when the adapter has it)', async (t) => {
  const adapter = await gpu.requestAdapter();
  if (!adapter?.features.has('shader-f16')) {
    t.skip('adapter lacks shader-f16');
    return;
  }
  const { device } = await getDevice(['shader-f16']);
  try {
    // Small integers and halves are exact in f16, so the result must match bit for bit after widening.
    const a = new Float32Array(N);
    for (let i = 0; i < N; i++) a[i] = (i % 200) * 0.5 - 50;
    const code = /* wgsl */ `
      enable f16;
      @group(0) @binding(0) var<storage, read> a: array<f32>;
      @group(0) @binding(1) var<storage, read_write> y: array<f32>;
      @compute @workgroup_size(${WG})
      fn main(@builtin(global_invocation_id) gid: vec3u) {
        let i = gid.x;
        if (i < arrayLength(&y)) { let h = f16(a[i]); y[i] = f32(h * 2.0h + 1.0h); }
      }`;
    const y = new Float32Array(await runElementwise(device, code, a, N * 4));
    for (let i = 0; i < N; i++) assert.equal(y[i], a[i] * 2 + 1, `y[${i}]`);
  } finally {
    device.destroy();
  }
});

// Exits 0 when Dawn finds an adapter and a device can be created; prints what it found.
process.env.XDG_RUNTIME_DIR ??= `/tmp/xdg-runtime-${process.getuid?.() ?? 0}`;
const { create, globals } = await import('webgpu');
Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) { console.error('no adapter'); process.exit(1); }
const device = await adapter.requestDevice();
console.log(`${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description}`);
device.destroy();
process.exit(0);

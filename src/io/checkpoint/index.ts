// Training checkpoints: atomic, durable folders with a hashed manifest, verified on load, newest N kept.
export { CheckpointError } from './errors.js';
export { writeFileAtomic, writeFileAtomicWith, fsyncPath, fsyncTree } from './atomic.js';
export { MANIFEST_FILE, hashFile, parseManifest, readManifest, verifyCheckpoint, type Manifest, type FileEntry } from './manifest.js';
export { CheckpointStore, stepDirName, setCheckpointFaultHook, type CheckpointStoreOptions, type CheckpointInfo, type LoadedCheckpoint } from './store.js';

// float64 reference for the LoRA linear layer y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ and its gradients.
export function loraRef(x: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number> | null, A: ArrayLike<number>, B: ArrayLike<number>, s: number, M: number, N: number, K: number, R: number) {
  const u = new Float64Array(M * R);
  for (let m = 0; m < M; m++) for (let r = 0; r < R; r++) { let t = 0; for (let k = 0; k < K; k++) t += x[m * K + k] * A[r * K + k]; u[m * R + r] = t; }
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let o = 0; o < N; o++) {
    let t = b ? b[o] : 0;
    for (let k = 0; k < K; k++) t += x[m * K + k] * W[o * K + k];
    for (let r = 0; r < R; r++) t += s * u[m * R + r] * B[o * R + r];
    y[m * N + o] = t;
  }
  return { y, u };
}

export function loraBackwardRef(x: ArrayLike<number>, W: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, s: number, dy: ArrayLike<number>, M: number, N: number, K: number, R: number) {
  const { u } = loraRef(x, W, null, A, B, s, M, N, K, R);
  const g = new Float64Array(M * R);
  for (let m = 0; m < M; m++) for (let r = 0; r < R; r++) { let t = 0; for (let o = 0; o < N; o++) t += dy[m * N + o] * B[o * R + r]; g[m * R + r] = s * t; }
  const dx = new Float64Array(M * K);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) {
    let t = 0;
    for (let o = 0; o < N; o++) t += dy[m * N + o] * W[o * K + k];
    for (let r = 0; r < R; r++) t += g[m * R + r] * A[r * K + k];
    dx[m * K + k] = t;
  }
  const dA = new Float64Array(R * K);
  for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) { let t = 0; for (let m = 0; m < M; m++) t += g[m * R + r] * x[m * K + k]; dA[r * K + k] = t; }
  const dB = new Float64Array(N * R);
  for (let o = 0; o < N; o++) for (let r = 0; r < R; r++) { let t = 0; for (let m = 0; m < M; m++) t += dy[m * N + o] * u[m * R + r]; dB[o * R + r] = s * t; }
  const db = new Float64Array(N);
  for (let m = 0; m < M; m++) for (let o = 0; o < N; o++) db[o] += dy[m * N + o];
  // dW = dyᵀ·x (when W is trainable).
  const dW = new Float64Array(N * K);
  for (let o = 0; o < N; o++) for (let k = 0; k < K; k++) { let t = 0; for (let m = 0; m < M; m++) t += dy[m * N + o] * x[m * K + k]; dW[o * K + k] = t; }
  return { dx, dA, dB, db, dW };
}

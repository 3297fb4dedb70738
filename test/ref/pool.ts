// Float64 CPU references for avgPool2d, spatialMean and upsampleNearest2x (forward and backward).

export function avgPoolRef(x: ArrayLike<number>, planes: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number) {
  const oh = Math.floor((h - kh) / sh) + 1;
  const ow = Math.floor((w - kw) / sw) + 1;
  const y = new Float64Array(planes * oh * ow);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++) {
        let s = 0;
        for (let ky = 0; ky < kh; ky++) for (let kx = 0; kx < kw; kx++) s += x[(p * h + oy * sh + ky) * w + ox * sw + kx];
        y[(p * oh + oy) * ow + ox] = s / (kh * kw);
      }
  return { y, oh, ow };
}

export function avgPoolBackwardRef(dy: ArrayLike<number>, planes: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number) {
  const oh = Math.floor((h - kh) / sh) + 1;
  const ow = Math.floor((w - kw) / sw) + 1;
  const dx = new Float64Array(planes * h * w);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let ky = 0; ky < kh; ky++)
          for (let kx = 0; kx < kw; kx++) dx[(p * h + oy * sh + ky) * w + ox * sw + kx] += dy[(p * oh + oy) * ow + ox] / (kh * kw);
  return dx;
}

export function spatialMeanRef(x: ArrayLike<number>, planes: number, hw: number) {
  const y = new Float64Array(planes);
  for (let p = 0; p < planes; p++) {
    let s = 0;
    for (let i = 0; i < hw; i++) s += x[p * hw + i];
    y[p] = s / hw;
  }
  return y;
}

export function spatialMeanBackwardRef(dy: ArrayLike<number>, planes: number, hw: number) {
  const dx = new Float64Array(planes * hw);
  for (let i = 0; i < dx.length; i++) dx[i] = dy[Math.floor(i / hw)] / hw;
  return dx;
}

export function upsampleRef(x: ArrayLike<number>, planes: number, h: number, w: number) {
  const y = new Float64Array(planes * 4 * h * w);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < 2 * h; oy++)
      for (let ox = 0; ox < 2 * w; ox++) y[(p * 2 * h + oy) * 2 * w + ox] = x[(p * h + (oy >> 1)) * w + (ox >> 1)];
  return y;
}

export function upsampleBackwardRef(dy: ArrayLike<number>, planes: number, h: number, w: number) {
  const dx = new Float64Array(planes * h * w);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < 2 * h; oy++)
      for (let ox = 0; ox < 2 * w; ox++) dx[(p * h + (oy >> 1)) * w + (ox >> 1)] += dy[(p * 2 * h + oy) * 2 * w + ox];
  return dx;
}

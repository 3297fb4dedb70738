// Float64 CPU references for conv2d (NCHW, groups = 1) and its gradients.
export interface ConvGeom {
  n: number; c: number; h: number; w: number; o: number; kh: number; kw: number;
  sh: number; sw: number; pad: [number, number, number, number];
}

export function convOut(g: ConvGeom): [number, number] {
  return [Math.floor((g.h + g.pad[0] + g.pad[1] - g.kh) / g.sh) + 1, Math.floor((g.w + g.pad[2] + g.pad[3] - g.kw) / g.sw) + 1];
}

/** Calls f(n, o, oy, ox, c, ky, kx, xIndex, wIndex, yIndex) for every in-bounds tap. */
function taps(g: ConvGeom, f: (xi: number, wi: number, yi: number) => void): void {
  const [oh, ow] = convOut(g);
  for (let n = 0; n < g.n; n++)
    for (let o = 0; o < g.o; o++)
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          const yi = ((n * g.o + o) * oh + oy) * ow + ox;
          for (let c = 0; c < g.c; c++)
            for (let ky = 0; ky < g.kh; ky++) {
              const iy = oy * g.sh - g.pad[0] + ky;
              if (iy < 0 || iy >= g.h) continue;
              for (let kx = 0; kx < g.kw; kx++) {
                const ix = ox * g.sw - g.pad[2] + kx;
                if (ix < 0 || ix >= g.w) continue;
                f(((n * g.c + c) * g.h + iy) * g.w + ix, ((o * g.c + c) * g.kh + ky) * g.kw + kx, yi);
              }
            }
        }
}

export function conv2dRef(g: ConvGeom, x: ArrayLike<number>, w: ArrayLike<number>, b?: ArrayLike<number>): Float64Array {
  const [oh, ow] = convOut(g);
  const y = new Float64Array(g.n * g.o * oh * ow);
  if (b) for (let i = 0; i < y.length; i++) y[i] = b[Math.floor(i / (oh * ow)) % g.o];
  taps(g, (xi, wi, yi) => { y[yi] += x[xi] * w[wi]; });
  return y;
}

export function conv2dBackwardRef(g: ConvGeom, x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>) {
  const [oh, ow] = convOut(g);
  const dx = new Float64Array(g.n * g.c * g.h * g.w);
  const dw = new Float64Array(g.o * g.c * g.kh * g.kw);
  const db = new Float64Array(g.o);
  taps(g, (xi, wi, yi) => {
    dx[xi] += dy[yi] * w[wi];
    dw[wi] += dy[yi] * x[xi];
  });
  for (let i = 0; i < dy.length; i++) db[Math.floor(i / (oh * ow)) % g.o] += dy[i];
  return { dx, dw, db };
}

// Unary functions by op code (the UNARY_* constants generated from src/gpu/opcodes.ts), shared by the
// elementwise kernels and matmul's fused activation epilogue, so each function is written once.
// Callers pass an `override` as `op`: after specialisation the switch folds to one case.
// alpha/beta parameterise affine (alpha·x + beta) and pow (x^alpha).

const GELU_C: f32 = 0.7978845608028654; // sqrt(2/pi)
const INV_SQRT2: f32 = 0.7071067811865476;
const INV_SQRT2PI: f32 = 0.3989422804014327;

fn unary_fn(op: u32, x: f32, alpha: f32, beta: f32) -> f32 {
  switch op {
    case UNARY_NEG: { return -x; }
    case UNARY_EXP: { return exp(x); }
    case UNARY_LOG: { return log(x); }
    case UNARY_SQRT: { return sqrt(x); }
    case UNARY_RSQRT: { return inverseSqrt(x); }
    case UNARY_SILU: { return x * sigmoid_(x); }
    case UNARY_GELU_TANH: { return 0.5 * x * (1.0 + tanh_(GELU_C * (x + 0.044715 * x * x * x))); }
    case UNARY_GELU: { return 0.5 * x * (1.0 + erf_(x * INV_SQRT2)); }
    case UNARY_QUICK_GELU: { return x * sigmoid_(1.702 * x); }
    case UNARY_SIGMOID: { return sigmoid_(x); }
    case UNARY_TANH: { return tanh_(x); }
    case UNARY_RELU: { return max(x, 0.0); }
    case UNARY_ABS: { return abs(x); }
    case UNARY_SQUARE: { return x * x; }
    case UNARY_AFFINE: { return alpha * x + beta; }
    case UNARY_POW: { return pow(x, alpha); }
    case UNARY_RECIPROCAL: { return 1.0 / x; }
    case UNARY_SIN: { return sin(x); }
    case UNARY_COS: { return cos(x); }
    default: { return x; } // UNARY_IDENTITY
  }
}

// d unary_fn / dx at x.
fn unary_grad_fn(op: u32, x: f32, alpha: f32, beta: f32) -> f32 {
  switch op {
    case UNARY_NEG: { return -1.0; }
    case UNARY_EXP: { return exp(x); }
    case UNARY_LOG: { return 1.0 / x; }
    case UNARY_SQRT: { return 0.5 * inverseSqrt(x); }
    case UNARY_RSQRT: { return -0.5 * inverseSqrt(x) / x; }
    case UNARY_SILU: { let s = sigmoid_(x); return s * (1.0 + x * (1.0 - s)); }
    case UNARY_GELU_TANH: {
      let u = GELU_C * (x + 0.044715 * x * x * x);
      let t = tanh_(u);
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case UNARY_GELU: { return 0.5 * (1.0 + erf_(x * INV_SQRT2)) + x * INV_SQRT2PI * exp(-0.5 * x * x); }
    case UNARY_QUICK_GELU: { let s = sigmoid_(1.702 * x); return s * (1.0 + 1.702 * x * (1.0 - s)); }
    case UNARY_SIGMOID: { let s = sigmoid_(x); return s * (1.0 - s); }
    case UNARY_TANH: { let t = tanh_(x); return 1.0 - t * t; }
    case UNARY_RELU: { return select(0.0, 1.0, x > 0.0); }
    case UNARY_ABS: { return sign(x); }
    case UNARY_SQUARE: { return 2.0 * x; }
    case UNARY_AFFINE: { return alpha; }
    case UNARY_POW: { return alpha * pow(x, alpha - 1.0); }
    case UNARY_RECIPROCAL: { return -1.0 / (x * x); }
    case UNARY_SIN: { return cos(x); }
    case UNARY_COS: { return -sin(x); }
    default: { return 1.0; } // UNARY_IDENTITY
  }
}

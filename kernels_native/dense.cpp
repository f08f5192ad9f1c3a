// Linear (GEMM), element-wise activations, SoftMax/LogSoftMax, cross-map LRN and LookupTable.
//
// Linear runs on a single-precision GEMM: oneDNN's dnnl_sgemm, or the OpenBLAS that numpy ships
// where a rule written down here (rule_provider, measured offline by benchmarks/bench_gemm.py)
// says so, or one provider forced by set_gemm_provider (MKL, from the optional `mkl` wheel, only
// that way).  Nothing is chosen by timing in the user's process: same shapes, threads and CPU,
// same code, same bits.  The GEMMs write (forward, grad_input) or accumulate
// (beta = 1: grad_weight) straight into the numpy arrays: no temporaries; bias and ReLU are
// applied in one pass over the output.
//
// Activations, softmax and LRN are oneDNN primitives cached per shape (like conv_pool.cpp);
// LookupTable is an OpenMP gather / scatter-add (oneDNN has no embedding primitive).  Every
// entry point re-checks shapes and arguments and raises ValueError, never touches memory out of
// bounds; the GIL is released while the kernels run.
#include <dlfcn.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <tuple>

#include "common.hpp"
#include "geometry.hpp"

namespace wbn {
namespace {

// ------------------------------------------------------------------ GEMM providers
// Row-major C(M, N) = op(A) op(B) + beta C, as the CBLAS interface (101 = row major,
// 111 = no transpose, 112 = transpose).
using cblas_sgemm32_t = void (*)(int, int, int, int32_t, int32_t, int32_t, float, const float*,
                                 int32_t, const float*, int32_t, float, float*, int32_t);
using cblas_sgemm64_t = void (*)(int, int, int, int64_t, int64_t, int64_t, float, const float*,
                                 int64_t, const float*, int64_t, float, float*, int64_t);
using mkl_threads_t = void (*)(int);

enum Provider { ONEDNN = 0, OPENBLAS = 1, MKL = 2, NPROVIDERS = 3 };
const char* kProviderNames[NPROVIDERS] = {"onednn", "openblas", "mkl"};

struct Blas {
    void* handle = nullptr;
    void* fn = nullptr;
    bool ilp64 = false;
    mkl_threads_t set_threads = nullptr;
    int threads = -1;
    std::string path, symbol;
};

Blas& blas(int p) {
    static Blas b[NPROVIDERS];
    return b[p];
}

// -1: the rule (rule_provider); else always this provider.
int& forced_provider() {
    static int p = -1;
    return p;
}

// The GEMMs run so far and the provider each got (for gemm_choices(); nothing reads it back).
std::map<std::vector<int64_t>, int>& gemm_seen() {
    static std::map<std::vector<int64_t>, int> c;
    return c;
}

bool available(int p) { return p == ONEDNN || blas(p).fn != nullptr; }

// The three GEMMs of a Linear layer, named by what they compute.
enum GemmKind { FORWARD = 0, GRAD_INPUT = 1, GRAD_WEIGHT = 2 };

// Which provider runs a GEMM, by shape, thread count and CPU, never by a timing taken here: a
// timing would let load on the machine change which code computes a layer, and so its rounding,
// from one run (or Spark executor) to the next.  The rule was measured offline by
// benchmarks/bench_gemm.py (results/gemm.json) on the CPUs it names:
// - more than one thread: oneDNN.  OpenBLAS's own pthread pool spins against oneDNN's OpenMP
//   threads (the MLP's GEMMs took 13-48 ms with it vs 0.06-4 ms without on 2 shared cores).
// - one thread, AVX2 without AVX-512 (AMD Zen 3): numpy's OpenBLAS for the weight gradient
//   (W += g^T x) of a layer with at least 2^15 weights: OpenBLAS took 0.48-1.03x oneDNN's
//   transposed-A accumulate time on the 21 such shapes measured (median 0.82); oneDNN for
//   everything else: smaller weight gradients (OpenBLAS 0.91-1.55x) and the forward and
//   grad-input GEMMs (within about +-15% either way, with no pattern by shape).
// - AVX-512: oneDNN (its avx512 sgemm; OpenBLAS not measured there).  The CPU's ISA as capped
//   by max_isa() (common.hpp), so an AVX-512 machine capped at AVX2 follows the AVX2 rule.
int rule_provider(GemmKind kind, int64_t batch, int64_t n_in, int64_t n_out, int threads) {
    if (threads != 1 || !available(OPENBLAS) || max_isa() == Isa::avx512) return ONEDNN;
    if (kind == GRAD_WEIGHT && n_in * n_out >= (1 << 15)) return OPENBLAS;
    return ONEDNN;
}

void sgemm(int p, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    if (p == ONEDNN) {
        dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B,
                                      ldb, beta, C, ldc);
        if (st != dnnl_success) throw std::runtime_error("dnnl_sgemm failed");
        return;
    }
    Blas& b = blas(p);
    if (b.set_threads) {
        int t = omp_get_max_threads();
        if (t != b.threads) {
            b.set_threads(t);
            b.threads = t;
        }
    }
    const int ta_ = ta ? 112 : 111, tb_ = tb ? 112 : 111;
    if (b.ilp64) {
        reinterpret_cast<cblas_sgemm64_t>(b.fn)(101, ta_, tb_, M, N, K, 1.0f, A, lda, B, ldb,
                                                beta, C, ldc);
    } else {
        reinterpret_cast<cblas_sgemm32_t>(b.fn)(101, ta_, tb_, (int32_t)M, (int32_t)N,
                                                (int32_t)K, 1.0f, A, (int32_t)lda, B,
                                                (int32_t)ldb, beta, C, (int32_t)ldc);
    }
}

// Multiply-adds below which a GEMM runs on the calling thread alone: waking the other threads
// of the OpenMP pool and joining them (tens of microseconds with passive waits, more on a
// loaded machine) costs more than the second core gives back (an MLP's 512 -> 10 output layer
// at batch 256: 1.3 M multiply-adds, ~40 us on one core).  As PyTorch's at::parallel_for
// grain size, a fixed amount of work, so the choice depends only on the shape.
constexpr int64_t kSerialGemm = int64_t(1) << 22;

// Runs `fn` with this thread's OpenMP count at `n`, then puts the count back.
template <class Fn>
void with_threads(int n, Fn&& fn) {
    const int before = omp_get_max_threads();
    if (n == before) return fn();
    omp_set_num_threads(n);
    try {
        fn();
    } catch (...) {
        omp_set_num_threads(before);
        throw;
    }
    omp_set_num_threads(before);
}

// C(M, N) (+)= op(A) op(B) for a Linear kernel of `kind` over (batch, n_in) -> (batch, n_out),
// on the forced provider or the rule's; on one thread when the GEMM is small.
void gemm(GemmKind kind, int64_t batch, int64_t n_in, int64_t n_out, bool ta, bool tb,
          int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C) {
    const int threads = omp_get_max_threads();
    int p = forced_provider();
    if (p < 0 || !available(p)) p = rule_provider(kind, batch, n_in, n_out, threads);
    auto& seen = gemm_seen();
    if (seen.size() > 1024) seen.clear();
    seen[{kind, batch, n_in, n_out, threads}] = p;
    if (threads > 1 && p == ONEDNN && M * N * K < kSerialGemm) {
        with_threads(1, [&] { sgemm(p, ta, tb, M, N, K, A, lda, B, ldb, beta, C, N); });
        return;
    }
    sgemm(p, ta, tb, M, N, K, A, lda, B, ldb, beta, C, N);
}

// Load a CBLAS sgemm from a shared library (numpy's OpenBLAS, MKL's mkl_rt).  Returns the
// symbol used.  MKL is switched to the GNU OpenMP threading layer (oneDNN's) and LP64 first.
std::string load_blas(const std::string& kind, const std::string& path) {
    int p = kind == "openblas" ? OPENBLAS : kind == "mkl" ? MKL : -1;
    if (p < 0) throw py::value_error("load_blas: kind must be 'openblas' or 'mkl'");
    KernelLock guard;
    void* h = dlopen(path.c_str(), RTLD_NOW | (p == MKL ? RTLD_GLOBAL : RTLD_LOCAL));
    if (!h) {
        const char* err = dlerror();
        throw py::value_error("load_blas: cannot load " + path + ": " + (err ? err : "?"));
    }
    if (p == MKL) {
        using set_layer_t = int (*)(int);
        if (auto f = reinterpret_cast<set_layer_t>(dlsym(h, "MKL_Set_Interface_Layer")))
            f(0);  // MKL_INTERFACE_LP64
        if (auto f = reinterpret_cast<set_layer_t>(dlsym(h, "MKL_Set_Threading_Layer")))
            f(3);  // MKL_THREADING_GNU: the libgomp oneDNN uses
    }
    const char* names64[] = {"scipy_cblas_sgemm64_", "cblas_sgemm64_"};
    void* fn = nullptr;
    bool ilp64 = false;
    std::string symbol;
    if (p == OPENBLAS) {
        for (const char* n : names64)
            if ((fn = dlsym(h, n))) {
                ilp64 = true;
                symbol = n;
                break;
            }
    }
    if (!fn && (fn = dlsym(h, "cblas_sgemm"))) symbol = "cblas_sgemm";
    if (!fn) {
        dlclose(h);
        throw py::value_error("load_blas: no cblas_sgemm in " + path);
    }
    Blas& b = blas(p);
    b.handle = h;
    b.fn = fn;
    b.ilp64 = ilp64;
    b.path = path;
    b.symbol = symbol;
    b.threads = -1;
    b.set_threads =
        p == MKL ? reinterpret_cast<mkl_threads_t>(dlsym(h, "MKL_Set_Num_Threads")) : nullptr;
    return symbol;
}

void set_gemm_provider(const std::string& name) {
    KernelLock guard;
    if (name == "auto") {
        forced_provider() = -1;
        return;
    }
    for (int p = 0; p < NPROVIDERS; ++p)
        if (name == kProviderNames[p]) {
            if (!available(p))
                throw py::value_error("set_gemm_provider: " + name + " is not loaded");
            forced_provider() = p;
            return;
        }
    throw py::value_error("set_gemm_provider: unknown provider " + name);
}

py::list gemm_providers() {
    KernelLock guard;
    py::list out;
    for (int p = 0; p < NPROVIDERS; ++p)
        if (available(p)) out.append(kProviderNames[p]);
    return out;
}

const char* kKindNames[3] = {"forward", "grad_input", "grad_weight"};

py::list gemm_choices() {
    KernelLock guard;
    py::list out;
    for (auto& kv : gemm_seen()) {
        const auto& k = kv.first;
        py::dict d;
        d["kernel"] = kKindNames[k[0]];
        d["batch"] = k[1];
        d["in"] = k[2];
        d["out"] = k[3];
        d["threads"] = k[4];
        d["provider"] = kProviderNames[kv.second];
        out.append(d);
    }
    return out;
}

// What the rule picks for a Linear kernel (no forced provider), by name.
std::string gemm_rule(const std::string& kernel, int64_t batch, int64_t n_in, int64_t n_out,
                      int threads) {
    for (int kind = 0; kind < 3; ++kind)
        if (kernel == kKindNames[kind]) {
            KernelLock guard;
            return kProviderNames[rule_provider(static_cast<GemmKind>(kind), batch, n_in, n_out,
                                                threads)];
        }
    throw py::value_error("gemm_rule: kernel must be forward, grad_input or grad_weight, got " +
                          kernel);
}

// ------------------------------------------------------------------ Linear
void check_dims(const char* what, std::initializer_list<int64_t> dims) {
    for (int64_t d : dims)
        if (d < 1) throw py::value_error(std::string(what) + ": sizes must be >= 1");
}

// An optional array argument: None, or an array (anything else is a ValueError).
py::array as_array(const py::object& o, const char* what) {
    if (!py::isinstance<py::array>(o))
        throw py::value_error(std::string(what) + ": expected a float32 array or None");
    return o.cast<py::array>();
}

// rows(N, O) += b (when b), then max(0, .) (when relu), in one vectorized pass per row (a
// loop the compiler left scalar, for fear that the row and the bias overlap, took 20x
// oneDNN's ReLU).
void bias_relu(float* __restrict out, const float* __restrict b, int64_t n, int64_t o,
               bool relu) {
#pragma omp parallel for if (n * o > 65536)
    for (int64_t i = 0; i < n; ++i) {
        float* __restrict row = out + i * o;
        if (b && relu) {
#pragma omp simd
            for (int64_t j = 0; j < o; ++j) row[j] = std::max(row[j] + b[j], 0.0f);
        } else if (b) {
#pragma omp simd
            for (int64_t j = 0; j < o; ++j) row[j] += b[j];
        } else {
#pragma omp simd
            for (int64_t j = 0; j < o; ++j) row[j] = std::max(row[j], 0.0f);
        }
    }
}

// grad_output masked where the ReLU's output y is not positive: out = y > 0 ? g : 0 (as
// oneDNN's ReLU backward, which the unfused native ReLU runs).  Written with SSE2 compares and
// ands (the x86-64 baseline): GCC left the plain loop scalar with a branch, mispredicted on
// half the elements (0.7 ms on 256 x 512, 25x oneDNN's ReLU backward).
void relu_mask(float* __restrict out, const float* __restrict y, const float* __restrict g,
               int64_t count) {
    const int64_t vec = count / 4 * 4;
#pragma omp parallel for if (count > 65536)
    for (int64_t i = 0; i < vec; i += 4) {
#ifdef __SSE2__
        const __m128 keep = _mm_cmpgt_ps(_mm_loadu_ps(y + i), _mm_setzero_ps());
        _mm_storeu_ps(out + i, _mm_and_ps(keep, _mm_loadu_ps(g + i)));
#else
        for (int64_t j = i; j < i + 4; ++j) out[j] = y[j] > 0.0f ? g[j] : 0.0f;
#endif
    }
    for (int64_t i = vec; i < count; ++i) out[i] = y[i] > 0.0f ? g[i] : 0.0f;
}

// out(N, O) = x(N, K) w(O, K)^T (+ b) (then max(0, .) if relu).
void linear_forward(py::array x, py::array w, py::object b, py::array out, bool relu) {
    if (x.ndim() != 2 || w.ndim() != 2)
        throw py::value_error("linear_forward: x and weight must be 2-D");
    const int64_t n = x.shape(0), k = x.shape(1), o = w.shape(0);
    check_dims("linear_forward", {n, k, o});
    KernelLock guard;
    float* px = data_of(x, "linear input", {n, k}, false);
    float* pw = data_of(w, "linear weight", {o, k}, false);
    float* po = data_of(out, "linear output", {n, o}, true);
    float* pb =
        b.is_none() ? nullptr : data_of(as_array(b, "linear bias"), "linear bias", {o}, false);
    py::gil_scoped_release nogil;
    gemm(FORWARD, n, k, o, false, true, n, o, k, px, k, pw, k, 0.0f, po);
    if (pb || relu) bias_relu(po, pb, n, o, relu);
}

// gin(N, K) = gout(N, O) w(O, K)
void linear_backward_data(py::array gout, py::array w, py::array gin) {
    if (gout.ndim() != 2 || w.ndim() != 2)
        throw py::value_error("linear_backward_data: grad_output and weight must be 2-D");
    const int64_t n = gout.shape(0), o = w.shape(0), k = w.shape(1);
    check_dims("linear_backward_data", {n, k, o});
    KernelLock guard;
    float* pg = data_of(gout, "linear grad_output", {n, o}, false);
    float* pw = data_of(w, "linear weight", {o, k}, false);
    float* pi = data_of(gin, "linear grad_input", {n, k}, true);
    py::gil_scoped_release nogil;
    gemm(GRAD_INPUT, n, k, o, false, false, n, k, o, pg, o, pw, k, 0.0f, pi);
}

// The bias gradient: out[j] += sum_i g[i, j] for an (n, o) row-major g.  Column sums row by row
// (contiguous reads), blocks of 256 columns shared out to the threads; each column is summed by
// one thread in row order, so the bits do not depend on the thread count.
static void add_column_sums(const float* g, int64_t n, int64_t o, float* out) {
    const int64_t block = 256;
#pragma omp parallel for if (n * o > 65536)
    for (int64_t j0 = 0; j0 < o; j0 += block) {
        const int64_t j1 = std::min(o, j0 + block);
        float acc[256] = {0};
        for (int64_t i = 0; i < n; ++i) {
            const float* row = g + i * o;
            for (int64_t j = j0; j < j1; ++j) acc[j - j0] += row[j];
        }
        for (int64_t j = j0; j < j1; ++j) out[j] += acc[j - j0];
    }
}

// gw(O, K) += gout(N, O)^T x(N, K); gb(O) += column sums of gout.
void linear_backward_weights(py::array x, py::array gout, py::array gw, py::object gb) {
    if (x.ndim() != 2 || gout.ndim() != 2)
        throw py::value_error("linear_backward_weights: x and grad_output must be 2-D");
    const int64_t n = x.shape(0), k = x.shape(1), o = gout.shape(1);
    check_dims("linear_backward_weights", {n, k, o});
    KernelLock guard;
    float* px = data_of(x, "linear input", {n, k}, false);
    float* pg = data_of(gout, "linear grad_output", {n, o}, false);
    float* pgw = data_of(gw, "linear grad_weight", {o, k}, true);
    float* pgb = gb.is_none() ? nullptr
                              : data_of(as_array(gb, "linear grad_bias"), "linear grad_bias",
                                        {o}, true);
    py::gil_scoped_release nogil;
    gemm(GRAD_WEIGHT, n, k, o, true, false, o, k, n, pg, o, px, k, 1.0f, pgw);
    if (pgb) add_column_sums(pg, n, o, pgb);
}

// The gradient of a Linear layer (and of the ReLU fused after it) in one call: with
// `relu_output` (the layer's output after its fused ReLU), grad_output is first masked where
// that output is 0, into `masked` (N, O); then grad_input = g w (when `grad_input` is not None)
// and grad_weight += g^T x, grad_bias += column sums of g (when `grad_weight` is not None).
void linear_backward(py::array x, py::array gout, py::array w, py::object relu_output,
                     py::object masked, py::object grad_input, py::object grad_weight,
                     py::object grad_bias) {
    if (x.ndim() != 2 || gout.ndim() != 2 || w.ndim() != 2)
        throw py::value_error("linear_backward: x, grad_output and weight must be 2-D");
    const int64_t n = x.shape(0), k = x.shape(1), o = w.shape(0);
    check_dims("linear_backward", {n, k, o});
    if (grad_weight.is_none() && !grad_bias.is_none())
        throw py::value_error("linear_backward: grad_bias needs grad_weight");
    KernelLock guard;
    float* px = data_of(x, "linear input", {n, k}, false);
    float* pg = data_of(gout, "linear grad_output", {n, o}, false);
    float* pw = data_of(w, "linear weight", {o, k}, false);
    float* py_ = relu_output.is_none()
                     ? nullptr
                     : data_of(as_array(relu_output, "linear relu output"), "linear relu output",
                               {n, o}, false);
    float* pm = nullptr;
    if (py_) {
        if (masked.is_none())
            throw py::value_error("linear_backward: a relu_output needs a `masked` buffer");
        pm = data_of(as_array(masked, "linear masked grad_output"), "linear masked grad_output",
                     {n, o}, true);
        // the mask loop reads y and grad_output while it writes `masked` (restrict)
        auto overlap = [n, o](const float* a, const float* b) {
            return a < b + n * o && b < a + n * o;
        };
        if (overlap(pm, pg) || overlap(pm, py_))
            throw py::value_error("linear_backward: `masked` must not overlap grad_output or "
                                  "relu_output");
    }
    float* pi = grad_input.is_none() ? nullptr
                                     : data_of(as_array(grad_input, "linear grad_input"),
                                               "linear grad_input", {n, k}, true);
    float* pgw = grad_weight.is_none() ? nullptr
                                       : data_of(as_array(grad_weight, "linear grad_weight"),
                                                 "linear grad_weight", {o, k}, true);
    float* pgb = grad_bias.is_none() ? nullptr
                                     : data_of(as_array(grad_bias, "linear grad_bias"),
                                               "linear grad_bias", {o}, true);
    py::gil_scoped_release nogil;
    if (pm) {
        relu_mask(pm, py_, pg, n * o);
        pg = pm;
    }
    if (pi) gemm(GRAD_INPUT, n, k, o, false, false, n, k, o, pg, o, pw, k, 0.0f, pi);
    if (pgw) gemm(GRAD_WEIGHT, n, k, o, true, false, o, k, n, pg, o, px, k, 1.0f, pgw);
    if (pgb) add_column_sums(pg, n, o, pgb);
}

// ------------------------------------------------------------------ element-wise
// kind: 0 relu (alpha = negative slope), 1 tanh, 2 sigmoid, 3 elu (alpha), 4 silu,
// 5 gelu (erf), 6 gelu (tanh approximation), 7 softplus (alpha = beta).
struct EltKind {
    dnnl::algorithm fwd, bwd;
    bool use_dst;  // backward reads the output (else the input)
};

EltKind elt_kind(int64_t kind) {
    using A = dnnl::algorithm;
    switch (kind) {
        case 0: return {A::eltwise_relu, A::eltwise_relu, false};
        case 1: return {A::eltwise_tanh_use_dst_for_bwd, A::eltwise_tanh_use_dst_for_bwd, true};
        case 2:
            return {A::eltwise_logistic_use_dst_for_bwd, A::eltwise_logistic_use_dst_for_bwd,
                    true};
        case 3: return {A::eltwise_elu, A::eltwise_elu, false};
        case 4: return {A::eltwise_swish, A::eltwise_swish, false};
        case 5: return {A::eltwise_gelu_erf, A::eltwise_gelu_erf, false};
        case 6: return {A::eltwise_gelu_tanh, A::eltwise_gelu_tanh, false};
        case 7: return {A::eltwise_soft_relu, A::eltwise_soft_relu, false};
        default: throw py::value_error("eltwise: unknown kind " + std::to_string(kind));
    }
}

struct Elt {
    dnnl::eltwise_forward fwd;
    dnnl::eltwise_backward bwd;
    memory src, dst, dsrc, ddst;
    bool use_dst;
    Elt(int64_t kind, float alpha, int64_t n) {
        auto& e = engine();
        EltKind k = elt_kind(kind);
        use_dst = k.use_dst;
        if (kind == 4) alpha = 1.0f;  // swish: x * sigmoid(alpha x)
        memory::desc md({n}, dt::f32, tag::a);
        auto fpd = dnnl::eltwise_forward::primitive_desc(e, dnnl::prop_kind::forward_training,
                                                         k.fwd, md, md, alpha, 0.0f,
                                                         scratch_attr());
        fwd = dnnl::eltwise_forward(fpd);
        auto bpd = dnnl::eltwise_backward::primitive_desc(e, k.bwd, md, md, md, alpha, 0.0f,
                                                          fpd, scratch_attr());
        bwd = dnnl::eltwise_backward(bpd);
        for (memory* m : {&src, &dst, &dsrc, &ddst}) *m = memory(md, e, DNNL_MEMORY_NONE);
    }
};

std::map<std::vector<int64_t>, std::unique_ptr<Elt>>& elt_cache() {
    static std::map<std::vector<int64_t>, std::unique_ptr<Elt>> c;
    return c;
}

Elt& get_elt(int64_t kind, double alpha, int64_t n) {
    elt_kind(kind);  // validates
    if (n < 1) throw py::value_error("eltwise: the array is empty");
    if (!std::isfinite(alpha)) throw py::value_error("eltwise: alpha must be finite");
    if (kind == 7 && !(alpha > 0)) throw py::value_error("eltwise: softplus beta must be > 0");
    float a32 = (float)alpha;
    int32_t bits;
    std::memcpy(&bits, &a32, 4);
    std::vector<int64_t> key{kind, bits, n};
    auto& cache = elt_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    if (cache.size() > 256) cache.clear();
    auto* p = new Elt(kind, a32, n);
    cache[key].reset(p);
    return *p;
}

int64_t size_of(const py::array& a) { return (int64_t)a.size(); }

std::vector<py::ssize_t> shape_vec(const py::array& a) {
    return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

void eltwise_forward(py::array x, py::array out, int64_t kind, double alpha) {
    KernelLock guard;
    auto shape = shape_vec(x);
    Elt& el = get_elt(kind, alpha, size_of(x));
    float* px = data_of(x, "eltwise input", shape, false);
    float* po = data_of(out, "eltwise output", shape, true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    el.src.set_data_handle(px);
    el.dst.set_data_handle(po);
    run(el.fwd, s, {{DNNL_ARG_SRC, el.src}, {DNNL_ARG_DST, el.dst}});
    s.wait();
}

// x: the forward input, y: the forward output (the kind decides which one is read).
void eltwise_backward(py::array x, py::array y, py::array gout, py::array gin, int64_t kind,
                      double alpha) {
    KernelLock guard;
    auto shape = shape_vec(gout);
    Elt& el = get_elt(kind, alpha, size_of(gout));
    float* pd = data_of(el.use_dst ? y : x, "eltwise forward data", shape, false);
    float* pg = data_of(gout, "eltwise grad_output", shape, false);
    float* pi = data_of(gin, "eltwise grad_input", shape, true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    memory& data = el.use_dst ? el.dst : el.src;
    data.set_data_handle(pd);
    el.ddst.set_data_handle(pg);
    el.dsrc.set_data_handle(pi);
    run(el.bwd, s, {{el.use_dst ? DNNL_ARG_DST : DNNL_ARG_SRC, data},
                    {DNNL_ARG_DIFF_DST, el.ddst},
                    {DNNL_ARG_DIFF_SRC, el.dsrc}});
    s.wait();
}

// out = max(a + b, 0): a residual sum and the ReLU after it (CAddTable -> ReLU) in one pass
// over memory instead of two (a sum, then a ReLU).  Flat arrays of one size.
void add_relu(py::array a, py::array b, py::array out) {
    KernelLock guard;
    auto shape = shape_vec(a);
    if (shape.size() != 1) throw py::value_error("add_relu: expected flat arrays");
    const float* pa = data_of(a, "add_relu a", shape, false);
    const float* pb = data_of(b, "add_relu b", shape, false);
    float* po = data_of(out, "add_relu out", shape, true);
    const int64_t n = shape[0];
    py::gil_scoped_release nogil;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) po[i] = std::max(pa[i] + pb[i], 0.0f);
}

// ------------------------------------------------------------------ softmax
// x viewed as (outer, C, inner), normalized over C; log: LogSoftMax.
struct Softmax {
    dnnl::softmax_forward fwd;
    dnnl::softmax_backward bwd;
    memory src, dst, ddst, dsrc;
    Softmax(int64_t outer, int64_t c, int64_t inner, bool log) {
        auto& e = engine();
        memory::desc md({outer, c, inner}, dt::f32, tag::abc);
        auto alg = log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate;
        auto fpd = dnnl::softmax_forward::primitive_desc(e, dnnl::prop_kind::forward_training,
                                                         alg, md, md, 1, scratch_attr());
        fwd = dnnl::softmax_forward(fpd);
        auto bpd = dnnl::softmax_backward::primitive_desc(e, alg, md, md, md, 1, fpd,
                                                          scratch_attr());
        bwd = dnnl::softmax_backward(bpd);
        for (memory* m : {&src, &dst, &dsrc, &ddst}) *m = memory(md, e, DNNL_MEMORY_NONE);
    }
};

std::map<std::vector<int64_t>, std::unique_ptr<Softmax>>& softmax_cache() {
    static std::map<std::vector<int64_t>, std::unique_ptr<Softmax>> c;
    return c;
}

Softmax& get_softmax(const std::vector<int64_t>& g) {
    if (g.size() != 4 || g[0] < 1 || g[1] < 1 || g[2] < 1 || g[3] < 0 || g[3] > 1)
        throw py::value_error("softmax: geometry must be (outer >= 1, C >= 1, inner >= 1, log)");
    auto& cache = softmax_cache();
    auto it = cache.find(g);
    if (it != cache.end()) return *it->second;
    if (cache.size() > 256) cache.clear();
    auto* p = new Softmax(g[0], g[1], g[2], g[3] != 0);
    cache[g].reset(p);
    return *p;
}

// x, out (and y, gout, gin) are (outer, C, inner) views made by Python.
void softmax_forward(py::array x, py::array out, std::vector<int64_t> geom) {
    KernelLock guard;
    Softmax& sm = get_softmax(geom);
    std::vector<py::ssize_t> shape{geom[0], geom[1], geom[2]};
    float* px = data_of(x, "softmax input", shape, false);
    float* po = data_of(out, "softmax output", shape, true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    sm.src.set_data_handle(px);
    sm.dst.set_data_handle(po);
    run(sm.fwd, s, {{DNNL_ARG_SRC, sm.src}, {DNNL_ARG_DST, sm.dst}});
    s.wait();
}

void softmax_backward(py::array y, py::array gout, py::array gin, std::vector<int64_t> geom) {
    KernelLock guard;
    Softmax& sm = get_softmax(geom);
    std::vector<py::ssize_t> shape{geom[0], geom[1], geom[2]};
    float* py_ = data_of(y, "softmax output", shape, false);
    float* pg = data_of(gout, "softmax grad_output", shape, false);
    float* pi = data_of(gin, "softmax grad_input", shape, true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    sm.dst.set_data_handle(py_);
    sm.ddst.set_data_handle(pg);
    sm.dsrc.set_data_handle(pi);
    run(sm.bwd, s, {{DNNL_ARG_DST, sm.dst}, {DNNL_ARG_DIFF_DST, sm.ddst},
                    {DNNL_ARG_DIFF_SRC, sm.dsrc}});
    s.wait();
}

// ------------------------------------------------------------------ cross-map LRN
// oneDNN 3.2 has only its reference LRN backward for plain NCHW (8x slower than numpy here), so
// the primitives run in the first layout (nhwc, nChw16c, nChw8c) where forward and backward both
// have a jit implementation, with reorders from / to numpy's NCHW; `fast` is false when there is
// none (Python then keeps the numpy code).
struct Lrn {
    int64_t n, c, h, w;
    dnnl::lrn_forward fwd;
    dnnl::lrn_backward bwd;
    Port f_src, f_dst, b_src, b_ddst, b_dsrc;
    memory ws;
    size_t ws_bytes = 0;
    bool fast = false;
    std::string impl;
    Lrn(int64_t n_, int64_t c_, int64_t h_, int64_t w_, int64_t size, float alpha, float beta,
        float k)
        : n(n_), c(c_), h(h_), w(w_) {
        auto& e = engine();
        memory::dims dims{n, c, h, w};
        memory::desc user(dims, dt::f32, tag::nchw);
        auto alg = dnnl::algorithm::lrn_across_channels;
        dnnl::lrn_forward::primitive_desc fpd;
        dnnl::lrn_backward::primitive_desc bpd;
        for (tag t : {tag::nhwc, tag::nChw16c, tag::nChw8c, tag::nchw}) {
            memory::desc md(dims, dt::f32, t);
            try {
                fpd = dnnl::lrn_forward::primitive_desc(e, dnnl::prop_kind::forward_training,
                                                        alg, md, md, size, alpha, beta, k,
                                                        scratch_attr());
                bpd = dnnl::lrn_backward::primitive_desc(e, alg, md, md, md, size, alpha, beta,
                                                         k, fpd, scratch_attr());
            } catch (const dnnl::error&) {
                continue;
            }
            impl = std::string(fpd.impl_info_str()) + " / " + bpd.impl_info_str();
            fast = impl.find("ref") == std::string::npos;
            if (fast || t == tag::nchw) break;
        }
        fwd = dnnl::lrn_forward(fpd);
        bwd = dnnl::lrn_backward(bpd);
        ws_bytes = fpd.workspace_desc().get_size();
        if (ws_bytes) ws = memory(fpd.workspace_desc(), e, DNNL_MEMORY_NONE);
        f_src.init(user, fpd.src_desc(), true, false);
        f_dst.init(user, fpd.dst_desc(), false, true);
        b_src.init(user, bpd.src_desc(), true, false);
        b_ddst.init(user, bpd.diff_dst_desc(), true, false);
        b_dsrc.init(user, bpd.diff_src_desc(), false, true);
    }
};

// Keyed by the geometry and alpha, beta, k (as float bits: the primitive's parameters).
using LrnKey = std::tuple<LrnGeometry, int32_t, int32_t, int32_t>;

std::map<LrnKey, std::unique_ptr<Lrn>>& lrn_cache() {
    static std::map<LrnKey, std::unique_ptr<Lrn>> c;
    return c;
}

int32_t float_bits(double v) {
    float f = (float)v;
    int32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}

Lrn& get_lrn(const LrnGeometry& g, double alpha, double beta, double k) {
    // size 1 is left to numpy: oneDNN 3.2 crashes creating its LRN with local_size 1
    if (g.n < 1 || g.c < 1 || g.h < 1 || g.w < 1 || g.size < 3 || g.size % 2 == 0)
        throw py::value_error("lrn: geometry must have n, c, h, w >= 1 and an odd size >= 3");
    if (!std::isfinite(alpha) || !std::isfinite(beta) || !std::isfinite(k) || !(k > 0))
        throw py::value_error("lrn: alpha, beta must be finite and k > 0");
    const LrnKey key(g, float_bits(alpha), float_bits(beta), float_bits(k));
    auto& cache = lrn_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    if (cache.size() > 256) cache.clear();
    auto* p = new Lrn(g.n, g.c, g.h, g.w, g.size, (float)alpha, (float)beta, (float)k);
    cache[key].reset(p);
    return *p;
}

size_t lrn_workspace_size(const LrnGeometry& geom, double alpha, double beta, double k) {
    KernelLock guard;
    return get_lrn(geom, alpha, beta, k).ws_bytes;
}

// (fast, implementations): fast when forward and backward both have a jit kernel.
py::tuple lrn_info(const LrnGeometry& geom, double alpha, double beta, double k) {
    KernelLock guard;
    Lrn& l = get_lrn(geom, alpha, beta, k);
    return py::make_tuple(l.fast, l.impl);
}

void* lrn_workspace(Lrn& l, py::object ws) {
    if (!l.ws_bytes) return nullptr;
    if (!py::isinstance<py::array>(ws))
        throw py::value_error("lrn: workspace must be a writable uint8 array of " +
                              std::to_string(l.ws_bytes) + " bytes");
    py::array a = ws.cast<py::array>();
    if (a.dtype().kind() != 'u' || a.itemsize() != 1 || a.ndim() != 1 ||
        !(a.flags() & py::array::c_style) || !a.writeable() || (size_t)a.shape(0) != l.ws_bytes)
        throw py::value_error("lrn: workspace must be a writable uint8 array of " +
                              std::to_string(l.ws_bytes) + " bytes");
    return a.mutable_data();
}

void lrn_forward(py::array x, py::array out, py::object ws, const LrnGeometry& geom,
                 double alpha, double beta, double k) {
    KernelLock guard;
    Lrn& l = get_lrn(geom, alpha, beta, k);
    void* pws = lrn_workspace(l, ws);
    float* px = data_of(x, "lrn input", {l.n, l.c, l.h, l.w}, false);
    float* po = data_of(out, "lrn output", {l.n, l.c, l.h, l.w}, true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC] = l.f_src.bind(px, s, true);
    args[DNNL_ARG_DST] = l.f_dst.out(po);
    if (pws) {
        l.ws.set_data_handle(pws);
        args[DNNL_ARG_WORKSPACE] = l.ws;
    }
    run(l.fwd, s, args);
    l.f_dst.finish(s);
    s.wait();
}

void lrn_backward(py::array x, py::array gout, py::array gin, py::object ws,
                  const LrnGeometry& geom, double alpha, double beta, double k) {
    KernelLock guard;
    Lrn& l = get_lrn(geom, alpha, beta, k);
    void* pws = lrn_workspace(l, ws);
    float* px = data_of(x, "lrn input", {l.n, l.c, l.h, l.w}, false);
    float* pg = data_of(gout, "lrn grad_output", {l.n, l.c, l.h, l.w}, false);
    float* pi = data_of(gin, "lrn grad_input", {l.n, l.c, l.h, l.w}, true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC] = l.b_src.bind(px, s, true);
    args[DNNL_ARG_DIFF_DST] = l.b_ddst.bind(pg, s, true);
    args[DNNL_ARG_DIFF_SRC] = l.b_dsrc.out(pi);
    if (pws) {
        l.ws.set_data_handle(pws);
        args[DNNL_ARG_WORKSPACE] = l.ws;
    }
    run(l.bwd, s, args);
    l.b_dsrc.finish(s);
    s.wait();
}

// ------------------------------------------------------------------ LookupTable
const int64_t* ids_of(const py::array& ids, int64_t rows) {
    if (!py::isinstance<py::array_t<int64_t>>(ids) || ids.dtype().kind() != 'i' ||
        ids.itemsize() != 8)
        throw py::value_error("lookup: ids must be an int64 array");
    if (!(ids.flags() & py::array::c_style))
        throw py::value_error("lookup: ids must be C-contiguous");
    const int64_t* p = static_cast<const int64_t*>(ids.data());
    const int64_t n = ids.size();
    for (int64_t i = 0; i < n; ++i)
        if (p[i] < 0 || p[i] >= rows)
            throw py::value_error("lookup: id " + std::to_string(p[i]) + " at position " +
                                  std::to_string(i) + " is out of range [0, " +
                                  std::to_string(rows - 1) + "]");
    return p;
}

// out(len(ids), D) = weight[ids]
void lookup_forward(py::array weight, py::array ids, py::array out) {
    if (weight.ndim() != 2) throw py::value_error("lookup: weight must be 2-D");
    const int64_t rows = weight.shape(0), d = weight.shape(1), n = ids.size();
    check_dims("lookup_forward", {rows, d});
    KernelLock guard;
    float* pw = data_of(weight, "lookup weight", {rows, d}, false);
    const int64_t* pid = ids_of(ids, rows);
    float* po = data_of(out, "lookup output", {n, d}, true);
    py::gil_scoped_release nogil;
#pragma omp parallel for if (n * d > 65536)
    for (int64_t i = 0; i < n; ++i) std::memcpy(po + i * d, pw + pid[i] * d, d * sizeof(float));
}

// grad_weight[ids[i]] += gout[i] for every i whose id is not pad (pad < 0: none).  Threads
// split the columns, so that repeated ids never race.
void lookup_backward(py::array gout, py::array ids, py::array gw, int64_t pad) {
    if (gw.ndim() != 2) throw py::value_error("lookup: grad_weight must be 2-D");
    const int64_t rows = gw.shape(0), d = gw.shape(1), n = ids.size();
    check_dims("lookup_backward", {rows, d});
    KernelLock guard;
    float* pgw = data_of(gw, "lookup grad_weight", {rows, d}, true);
    const int64_t* pid = ids_of(ids, rows);
    float* pg = data_of(gout, "lookup grad_output", {n, d}, false);
    py::gil_scoped_release nogil;
    const int threads = (n * d > 65536) ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t j0 = d * t / nt, j1 = d * (t + 1) / nt;
        for (int64_t i = 0; i < n; ++i) {
            if (pid[i] == pad) continue;
            float* dst = pgw + pid[i] * d;
            const float* src = pg + i * d;
            for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
        }
    }
}

}  // namespace

void register_dense(py::module_& m) {
    m.def("load_blas", &load_blas, py::arg("kind"), py::arg("path"),
          "Load cblas_sgemm from a shared library ('openblas' or 'mkl') as a GEMM candidate.");
    m.def("set_gemm_provider", &set_gemm_provider, py::arg("name"),
          "'auto' (the rule: by shape, threads and CPU) or a provider of gemm_providers().");
    m.def("gemm_providers", &gemm_providers);
    m.def("gemm_choices", &gemm_choices,
          "The Linear GEMMs run so far: kernel, batch, in, out, threads and the provider used.");
    m.def("gemm_rule", &gemm_rule, py::arg("kernel"), py::arg("batch"), py::arg("n_in"),
          py::arg("n_out"), py::arg("threads"),
          "The provider the rule picks for a Linear kernel ('forward', 'grad_input', "
          "'grad_weight').");
    m.def("linear_forward", &linear_forward, py::arg("x"), py::arg("weight"), py::arg("bias"),
          py::arg("out"), py::arg("relu") = false);
    m.def("linear_backward_data", &linear_backward_data, py::arg("grad_output"),
          py::arg("weight"), py::arg("grad_input"));
    m.def("linear_backward_weights", &linear_backward_weights, py::arg("x"),
          py::arg("grad_output"), py::arg("grad_weight"), py::arg("grad_bias"));
    m.def("linear_backward", &linear_backward, py::arg("x"), py::arg("grad_output"),
          py::arg("weight"), py::arg("relu_output"), py::arg("masked"), py::arg("grad_input"),
          py::arg("grad_weight"), py::arg("grad_bias"),
          "A Linear layer's gradients (and its fused ReLU's mask) in one call.");
    m.def("eltwise_forward", &eltwise_forward, py::arg("x"), py::arg("out"), py::arg("kind"),
          py::arg("alpha"));
    m.def("eltwise_backward", &eltwise_backward, py::arg("x"), py::arg("y"),
          py::arg("grad_output"), py::arg("grad_input"), py::arg("kind"), py::arg("alpha"));
    m.def("add_relu", &add_relu, py::arg("a"), py::arg("b"), py::arg("out"));
    m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("out"), py::arg("geometry"));
    m.def("softmax_backward", &softmax_backward, py::arg("y"), py::arg("grad_output"),
          py::arg("grad_input"), py::arg("geometry"));
    m.def("lrn_workspace_size", &lrn_workspace_size, py::arg("geometry"), py::arg("alpha"),
          py::arg("beta"), py::arg("k"));
    m.def("lrn_info", &lrn_info, py::arg("geometry"), py::arg("alpha"), py::arg("beta"),
          py::arg("k"));
    m.def("lrn_forward", &lrn_forward, py::arg("x"), py::arg("out"), py::arg("workspace"),
          py::arg("geometry"), py::arg("alpha"), py::arg("beta"), py::arg("k"));
    m.def("lrn_backward", &lrn_backward, py::arg("x"), py::arg("grad_output"),
          py::arg("grad_input"), py::arg("workspace"), py::arg("geometry"), py::arg("alpha"),
          py::arg("beta"), py::arg("k"));
    m.def("lookup_forward", &lookup_forward, py::arg("weight"), py::arg("ids"), py::arg("out"));
    m.def("lookup_backward", &lookup_backward, py::arg("grad_output"), py::arg("ids"),
          py::arg("grad_weight"), py::arg("pad"));
    static bool once = [] {
        cache_clearers().push_back([] {
            gemm_seen().clear();
            elt_cache().clear();
            softmax_cache().clear();
            lrn_cache().clear();
        });
        return true;
    }();
    (void)once;
}

}  // namespace wbn

// The optimizer update of SGD with momentum over the flat parameter vector, in one parallel
// pass (workbench.optim.SGD runs it when the native backend is on and the vectors are float32).
//
// The numpy reference makes four passes over the vector (buf *= m; buf += d; t = lr * buf;
// w -= t), each on one thread; this is the same arithmetic per element, in the same order and
// with the same float32 roundings, so the two give the same bits on any thread count: every
// element is computed by one thread from its own values only.  No fused multiply-add may
// contract a product and a sum here (it would round once where numpy rounds twice): the file
// is compiled for the baseline x86-64 ISA (hatch_build.py's flags, no -march, no target
// clones), which has no FMA instruction.
#include <cmath>

#include "common.hpp"

namespace wbn {
namespace {

// Below this many elements the pass runs on the calling thread: waking a second thread costs
// more than it saves (PyTorch's at::parallel_for grain size is 32768 elements).
constexpr int64_t kGrain = 32768;

// One element per iteration, no branch in the loop (the variant is a template argument), so
// the compiler vectorizes it (omp simd: the pointers are distinct, checked by the caller).
template <bool kDecay, bool kDampened>
void momentum_pass(float* __restrict w, const float* __restrict g, float* __restrict buf,
                   int64_t n, float lr, float mom, float damp_keep, float wd) {
#pragma omp parallel for simd schedule(static) if (n >= 2 * kGrain)
    for (int64_t i = 0; i < n; ++i) {
        float d = g[i];
        if (kDecay) {
            const float t = w[i] * wd;  // numpy: d = w * wd; d += g
            d = t + d;
        }
        float b = buf[i] * mom;  // buf *= mom
        if (kDampened) {
            const float t = d * damp_keep;  // t = d * (1 - dampening); buf += t
            b = b + t;
        } else {
            b = b + d;  // buf += d
        }
        buf[i] = b;
        const float step = b * lr;  // t = buf * lr; w -= t
        w[i] = w[i] - step;
    }
}

// w -= lr * buf after buf = momentum * buf + (1 - dampening) * (g + weight_decay * w), in
// place.  The scalars are rounded to float32 first, as numpy does with Python floats.
void sgd_momentum(py::array w, py::array g, py::array buf, double lr, double momentum,
                  double dampening, double weight_decay) {
    if (w.ndim() != 1) throw py::value_error("sgd_momentum: weights must be a 1-D array");
    const int64_t n = w.shape(0);
    for (double v : {lr, momentum, dampening, weight_decay})
        if (!std::isfinite(v))
            throw py::value_error("sgd_momentum: lr, momentum, dampening, weight_decay must "
                                  "be finite");
    KernelLock guard;
    float* pw = data_of(w, "sgd weights", {n}, true);
    float* pg = data_of(g, "sgd gradient", {n}, false);
    float* pb = data_of(buf, "sgd momentum buffer", {n}, true);
    // the loop assumes distinct arrays (restrict); ranges, since views may overlap partly
    auto overlap = [n](const float* a, const float* b) { return a < b + n && b < a + n; };
    if (overlap(pw, pb) || overlap(pg, pb) || overlap(pw, pg))
        throw py::value_error("sgd_momentum: the weights, gradient and momentum buffer must "
                              "not overlap");
    const float keep = static_cast<float>(1.0 - dampening);
    py::gil_scoped_release nogil;
    const float flr = static_cast<float>(lr), fmom = static_cast<float>(momentum),
                fwd = static_cast<float>(weight_decay);
    if (weight_decay != 0.0) {
        if (dampening != 0.0) momentum_pass<true, true>(pw, pg, pb, n, flr, fmom, keep, fwd);
        else momentum_pass<true, false>(pw, pg, pb, n, flr, fmom, keep, fwd);
    } else {
        if (dampening != 0.0) momentum_pass<false, true>(pw, pg, pb, n, flr, fmom, keep, fwd);
        else momentum_pass<false, false>(pw, pg, pb, n, flr, fmom, keep, fwd);
    }
}

}  // namespace

void register_optim(py::module_& m) {
    m.def("sgd_momentum", &sgd_momentum, py::arg("weights"), py::arg("gradient"),
          py::arg("buffer"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
          py::arg("weight_decay"),
          "SGD with momentum in place, one parallel pass (float32 1-D C-contiguous vectors).");
}

}  // namespace wbn

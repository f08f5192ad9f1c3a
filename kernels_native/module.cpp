// The workbench._native module: registers every family's entry points, plus threads, the CPU's
// FMA peak (for the benchmarks' efficiency figures) and the cache reset.
#include <immintrin.h>

#include "common.hpp"

namespace wbn {
namespace {

// The FMA peak of one core, for efficiency figures in the benchmarks: 12 independent chains
// of 8-wide fused multiply-adds (enough to cover the FMA latency on AVX2 cores).
__attribute__((target("avx2,fma"))) double fma_flops(int64_t iterations) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 c0 = _mm256_set1_ps(0.0f), c1 = _mm256_set1_ps(0.1f), c2 = _mm256_set1_ps(0.2f),
           c3 = _mm256_set1_ps(0.3f), c4 = _mm256_set1_ps(0.4f), c5 = _mm256_set1_ps(0.5f),
           c6 = _mm256_set1_ps(0.6f), c7 = _mm256_set1_ps(0.7f), c8 = _mm256_set1_ps(0.8f),
           c9 = _mm256_set1_ps(0.9f), c10 = _mm256_set1_ps(1.0f), c11 = _mm256_set1_ps(1.1f);
    for (int64_t it = 0; it < iterations; ++it) {
        c0 = _mm256_fmadd_ps(c0, a, b); c1 = _mm256_fmadd_ps(c1, a, b);
        c2 = _mm256_fmadd_ps(c2, a, b); c3 = _mm256_fmadd_ps(c3, a, b);
        c4 = _mm256_fmadd_ps(c4, a, b); c5 = _mm256_fmadd_ps(c5, a, b);
        c6 = _mm256_fmadd_ps(c6, a, b); c7 = _mm256_fmadd_ps(c7, a, b);
        c8 = _mm256_fmadd_ps(c8, a, b); c9 = _mm256_fmadd_ps(c9, a, b);
        c10 = _mm256_fmadd_ps(c10, a, b); c11 = _mm256_fmadd_ps(c11, a, b);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    double sum = 0;
    for (float v : out) sum += v;
    return sum;  // keeps the loop alive; the caller times it: 2*8*12 flops per iteration
}

// The same with 512-bit FMAs, for CPUs that have them (on AMD Zen 4 they issue as two 256-bit
// halves, so the peak is the same; on Intel server cores with two 512-bit units it doubles).
__attribute__((target("avx512f"))) double fma512_flops(int64_t iterations) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    __m512 c0 = _mm512_set1_ps(0.0f), c1 = _mm512_set1_ps(0.1f), c2 = _mm512_set1_ps(0.2f),
           c3 = _mm512_set1_ps(0.3f), c4 = _mm512_set1_ps(0.4f), c5 = _mm512_set1_ps(0.5f),
           c6 = _mm512_set1_ps(0.6f), c7 = _mm512_set1_ps(0.7f), c8 = _mm512_set1_ps(0.8f),
           c9 = _mm512_set1_ps(0.9f), c10 = _mm512_set1_ps(1.0f), c11 = _mm512_set1_ps(1.1f);
    for (int64_t it = 0; it < iterations; ++it) {
        c0 = _mm512_fmadd_ps(c0, a, b); c1 = _mm512_fmadd_ps(c1, a, b);
        c2 = _mm512_fmadd_ps(c2, a, b); c3 = _mm512_fmadd_ps(c3, a, b);
        c4 = _mm512_fmadd_ps(c4, a, b); c5 = _mm512_fmadd_ps(c5, a, b);
        c6 = _mm512_fmadd_ps(c6, a, b); c7 = _mm512_fmadd_ps(c7, a, b);
        c8 = _mm512_fmadd_ps(c8, a, b); c9 = _mm512_fmadd_ps(c9, a, b);
        c10 = _mm512_fmadd_ps(c10, a, b); c11 = _mm512_fmadd_ps(c11, a, b);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    return _mm512_reduce_add_ps(s);  // 2*16*12 flops per iteration
}

bool has_avx512() { return __builtin_cpu_supports("avx512f"); }

bool has_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// The name of the ISA oneDNN's CPU kernels dispatch to here (the CPU's, capped by
// ONEDNN_MAX_CPU_ISA): the benchmarks record it next to their numbers.
std::string onednn_isa() {
    using dnnl::cpu_isa;
    switch (dnnl::get_effective_cpu_isa()) {
        case cpu_isa::sse41: return "sse41";
        case cpu_isa::avx: return "avx";
        case cpu_isa::avx2: return "avx2";
        case cpu_isa::avx2_vnni: return "avx2_vnni";
        case cpu_isa::avx2_vnni_2: return "avx2_vnni_2";
        case cpu_isa::avx512_core: return "avx512_core";
        case cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
        case cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
        case cpu_isa::avx512_core_fp16: return "avx512_core_fp16";
        case cpu_isa::avx512_core_amx: return "avx512_core_amx";
        case cpu_isa::avx512_core_amx_fp16: return "avx512_core_amx_fp16";
        default: return "other";
    }
}

void set_num_threads(int n) {
    if (n < 1) throw py::value_error("set_num_threads: n must be >= 1");
    KernelLock guard;  // not while a kernel runs
    process_threads().store(n);
    omp_set_num_threads(n);
}

void clear_cache() {
    KernelLock guard;
    for (auto& f : cache_clearers()) f();
}

}  // namespace
}  // namespace wbn

using namespace wbn;

PYBIND11_MODULE(_native, m) {
    m.doc() = "oneDNN layer kernels for workbench.nn (float32, NCHW numpy arrays)";
    register_geometry(m);  // first: the entry points' signatures name these classes
    register_conv_pool(m);
    register_dense(m);
    register_rnn(m);
    register_optim(m);
    m.def("set_num_threads", &set_num_threads);
    m.def("has_fma", &has_fma);
    m.def("fma_flops", [](int64_t iterations) {
        if (!has_fma()) throw py::value_error("fma_flops: this CPU has no AVX2 FMA");
        py::gil_scoped_release nogil;
        return fma_flops(iterations);
    }, py::arg("iterations"), "Run 192 * iterations fp32 FLOPs of FMA on one core.");
    m.def("has_avx512", &has_avx512);
    m.def("fma512_flops", [](int64_t iterations) {
        if (!has_avx512()) throw py::value_error("fma512_flops: this CPU has no AVX-512");
        py::gil_scoped_release nogil;
        return fma512_flops(iterations);
    }, py::arg("iterations"), "Run 384 * iterations fp32 FLOPs of AVX-512 FMA on one core.");
    m.def("onednn_isa", &onednn_isa,
          "The ISA oneDNN dispatches to (the CPU's, capped by ONEDNN_MAX_CPU_ISA).");
    m.def("max_isa", []() { return std::string(isa_name(max_isa())); },
          "The ISA of the hand-written loops and CPU rules: avx512, avx2 or generic (the CPU's, "
          "capped by WORKBENCH_MAX_CPU_ISA, else ONEDNN_MAX_CPU_ISA).");
    m.def("get_num_threads", []() { return process_threads().load(); });
    m.def("clear_cache", &clear_cache);
    m.def("onednn_version", []() {
        auto v = dnnl::version();
        return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
               std::to_string(v->patch);
    });
    // errors from oneDNN (unsupported shape ...) become ValueError, never a crash
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const dnnl::error& e) {
            PyErr_SetString(PyExc_ValueError, (std::string("oneDNN: ") + e.what()).c_str());
        }
    });
}

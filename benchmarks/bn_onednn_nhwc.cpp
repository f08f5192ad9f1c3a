// oneDNN's own batch normalization on channels-last (nhwc) activations, the peer of the native
// channels-last loops in benchmarks/bench_bn_layout.py (which compiles and runs this file).
//
// Training forward (batch statistics) and backward with scale, shift and the fused ReLU
// (use_scale | use_shift | fuse_norm_relu; the backward reads the forward's workspace).  Prints
// one JSON line per shape: the implementation, the median milliseconds of forward and backward,
// and the largest relative error of oneDNN's mean / variance against a two-pass double
// reference.
//
//     bn_onednn_nhwc THREADS ITERATIONS N C H W [C H W ...]
#include <dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using namespace dnnl;

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main(int argc, char** argv) {
    if (argc < 7 || (argc - 4) % 3 != 0) {
        std::fprintf(stderr, "usage: %s THREADS ITERATIONS N C H W [C H W ...]\n", argv[0]);
        return 2;
    }
    const int threads = std::atoi(argv[1]), iters = std::atoi(argv[2]);
    const long n = std::atol(argv[3]);
    omp_set_num_threads(threads);
    engine eng(engine::kind::cpu, 0);
    stream s(eng);
    for (int k = 4; k + 2 < argc; k += 3) {
        const long c = std::atol(argv[k]), h = std::atol(argv[k + 1]), w = std::atol(argv[k + 2]);
        const memory::desc md({n, c, h, w}, memory::data_type::f32, memory::format_tag::nhwc);
        const auto flags = normalization_flags::use_scale | normalization_flags::use_shift |
                           normalization_flags::fuse_norm_relu;
        batch_normalization_forward::primitive_desc fpd(eng, prop_kind::forward_training, md, md,
                                                        1e-5f, flags);
        batch_normalization_backward::primitive_desc bpd(eng, prop_kind::backward, md, md, md,
                                                         1e-5f, flags, fpd);
        memory src(md, eng), dst(md, eng), ddst(md, eng), dsrc(md, eng);
        memory mean(fpd.mean_desc(), eng), var(fpd.variance_desc(), eng);
        const memory::desc cd({c}, memory::data_type::f32, memory::format_tag::a);
        memory scale(cd, eng), shift(cd, eng), dscale(cd, eng), dshift(cd, eng);
        memory ws(fpd.workspace_desc(), eng);
        const size_t size = (size_t)n * c * h * w;
        std::mt19937 rng(1);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        float* px = (float*)src.get_data_handle();
        float* pg = (float*)ddst.get_data_handle();
        for (size_t i = 0; i < size; ++i) {
            px[i] = 3.0f + 2.0f * nd(rng) + (float)(i % c);  // channel-dependent means
            pg[i] = nd(rng);
        }
        float *ps = (float*)scale.get_data_handle(), *pt = (float*)shift.get_data_handle();
        for (long i = 0; i < c; ++i) {
            ps[i] = 1.0f + 0.01f * i;
            pt[i] = 0.1f;
        }
        batch_normalization_forward fwd(fpd);
        batch_normalization_backward bwd(bpd);
        std::vector<double> tf, tb;
        for (int it = 0; it < iters + 2; ++it) {
            auto t0 = std::chrono::steady_clock::now();
            fwd.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_MEAN, mean},
                            {DNNL_ARG_VARIANCE, var}, {DNNL_ARG_SCALE, scale},
                            {DNNL_ARG_SHIFT, shift}, {DNNL_ARG_WORKSPACE, ws}});
            s.wait();
            auto t1 = std::chrono::steady_clock::now();
            bwd.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_MEAN, mean}, {DNNL_ARG_VARIANCE, var},
                            {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_SCALE, scale},
                            {DNNL_ARG_WORKSPACE, ws},
                            {DNNL_ARG_DIFF_SRC, dsrc}, {DNNL_ARG_DIFF_SCALE, dscale},
                            {DNNL_ARG_DIFF_SHIFT, dshift}});
            s.wait();
            auto t2 = std::chrono::steady_clock::now();
            if (it >= 2) {
                tf.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
                tb.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
            }
        }
        // oneDNN's statistics against two passes in double
        const float *pm = (const float*)mean.get_data_handle(),
                    *pv = (const float*)var.get_data_handle();
        double err_m = 0, err_v = 0;
        const size_t rows = size / c;
        for (long ch = 0; ch < c; ++ch) {
            double sm = 0, sq = 0;
            for (size_t r = 0; r < rows; ++r) sm += px[r * c + ch];
            sm /= rows;
            for (size_t r = 0; r < rows; ++r) sq += (px[r * c + ch] - sm) * (px[r * c + ch] - sm);
            sq /= rows;
            err_m = std::max(err_m, std::fabs(pm[ch] - sm) / std::max(1e-30, std::fabs(sm)));
            err_v = std::max(err_v, std::fabs(pv[ch] - sq) / sq);
        }
        std::printf("{\"shape\": [%ld, %ld, %ld, %ld], \"threads\": %d, \"impl\": \"%s / %s\", "
                    "\"forward_ms\": %.4f, \"backward_ms\": %.4f, \"mean_rel_err\": %.3g, "
                    "\"var_rel_err\": %.3g}\n",
                    n, c, h, w, threads, fpd.impl_info_str(), bpd.impl_info_str(), median(tf),
                    median(tb), err_m, err_v);
    }
    return 0;
}

// Convolution and pooling on oneDNN, batch normalization in plain loops (NCHW numpy arrays in and
// out).
//
// Every entry point takes C-contiguous float32 arrays that Python allocated and checked,
// plus the layer geometry (a struct of geometry.hpp, built by name in Python).  The geometry is
// checked again here (a wrong call raises ValueError, never touches memory out of bounds).
// Primitives and the reorders between numpy's NCHW and the primitive's preferred (blocked) layout
// are built once per shape and cached; the blocked copies live in a few scratch slots shared by
// every shape (Arena); the GIL is released while a primitive runs.
#include "common.hpp"
#include "geometry.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace wbn {
namespace {

// ------------------------------------------------------------------ scratch arena
// The blocked-layout copies of activations and gradients live only during one call (the lock
// serializes calls), so every shape shares a few slots of scratch, grown to the largest shape,
// instead of each cached primitive owning its own (~200 MB for ResNet-20 at batch 128).
struct Arena {
    struct Free { void operator()(void* p) const { std::free(p); } };
    std::vector<std::unique_ptr<void, Free>> slots;
    std::vector<size_t> sizes;
    void* get(size_t slot, size_t bytes) {
        if (slots.size() <= slot) { slots.resize(slot + 1); sizes.resize(slot + 1, 0); }
        if (sizes[slot] < bytes) {
            slots[slot].reset();
            size_t rounded = (bytes + 4095) / 4096 * 4096;
            void* p = std::aligned_alloc(4096, rounded);
            if (!p) throw std::bad_alloc();
            slots[slot].reset(p);
            sizes[slot] = rounded;
        }
        return slots[slot].get();
    }
    void clear() { slots.clear(); sizes.clear(); }
};

Arena& arena() {
    static Arena a;
    return a;
}

// Make a port's primitive-side memory a handle into arena slot ``slot`` (no memory of its own).
void use_arena(Port& p) {
    if (!p.same) p.prim = memory(p.prim.get_desc(), engine(), DNNL_MEMORY_NONE);
}
void bind_slot(Port& p, size_t slot) {
    if (!p.same) p.prim.set_data_handle(arena().get(slot, p.prim.get_desc().get_size()));
}

// ------------------------------------------------------------------ convolution
// The geometry (ConvGeometry, geometry.hpp) checked: sizes >= 1, paddings >= 0, channels
// divisible by the groups, the (dilated) kernel within the padded input.
const ConvGeometry& check_conv(const ConvGeometry& q) {
    if (q.n < 1 || q.c_in < 1 || q.h < 1 || q.w < 1 || q.c_out < 1 || q.kernel_h < 1 ||
        q.kernel_w < 1 || q.stride_h < 1 || q.stride_w < 1 || q.dilation_h < 1 ||
        q.dilation_w < 1 || q.pad_top < 0 || q.pad_bottom < 0 || q.pad_left < 0 ||
        q.pad_right < 0 || q.groups < 1 || q.c_in % q.groups || q.c_out % q.groups)
        throw py::value_error("conv: invalid geometry");
    if (q.h + q.pad_top + q.pad_bottom < (q.kernel_h - 1) * q.dilation_h + 1 ||
        q.w + q.pad_left + q.pad_right < (q.kernel_w - 1) * q.dilation_w + 1 || q.out_h() < 1 ||
        q.out_w() < 1)
        throw py::value_error("conv: kernel larger than the padded input");
    return q;
}

// The numpy shape of the weights: (O, C / groups, kh, kw).
std::vector<py::ssize_t> wei_shape(const ConvGeometry& q) {
    return {q.c_out, q.c_in / q.groups, q.kernel_h, q.kernel_w};
}

// The numpy shapes of the activations: (N, C, H, W), or (N, H, W, C) when channels-last.
std::vector<py::ssize_t> src_shape(const ConvGeometry& q) {
    if (q.src_channels_last) return {q.n, q.h, q.w, q.c_in};
    return {q.n, q.c_in, q.h, q.w};
}
std::vector<py::ssize_t> dst_shape(const ConvGeometry& q) {
    if (q.dst_channels_last) return {q.n, q.out_h(), q.out_w(), q.c_out};
    return {q.n, q.c_out, q.out_h(), q.out_w()};
}

// A primitive descriptor for oneDNN's preferred layouts (make(0)) unless a channels-last
// activation would then need a reorder (``bad(pd)``: bit 1 the input side, bit 2 the output
// side): then the one with those activations fixed to the channels-last layout itself
// (make(bits); all of them if that is not enough), measured faster than blocked + reorders.
// The side oneDNN already reads in place (16 channels: nChw16c) keeps its choice (a stride-2
// 16 -> 32 convolution: 93 vs 76 GFLOP/s with both sides fixed).  Never a reference (plain
// C++ loop) implementation when the first is a real one (e.g. a plain NCHW gradient of a
// 3-channel input with a channels-last grad_output: 300 ms vs 4 ms + a reorder).
template <class PD, class Make, class Bad>
PD choose_pd(Make make, Bad bad) {
    auto is_ref = [](const PD& pd) {
        return std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
    };
    PD first = make(0);
    const int bits = bad(first);
    if (!bits) return first;
    PD fixed = make(bits);
    if (bits != 3 && bad(fixed)) fixed = make(3);
    if (is_ref(fixed) && !is_ref(first)) return first;
    return fixed;
}

struct Conv {
    ConvGeometry q;
    dnnl::convolution_forward::primitive_desc fwd_pd;
    dnnl::convolution_forward fwd;
    Port f_src, f_wei, f_dst;
    memory f_bias;
    // backward (built on first use)
    bool have_bwd = false;
    dnnl::convolution_backward_data bwd_data;
    dnnl::convolution_backward_weights bwd_wei;
    Port d_dst, d_wei, d_src;                 // backward data
    Port w_src, w_ddst, w_dwei;               // backward weights
    bool shared_ddst = false;
    memory w_dbias;
    std::vector<float> dwei_tmp, dbias_tmp;

    memory::dims wdims() const {
        const int64_t g = q.groups;
        return g > 1 ? memory::dims{g, q.c_out / g, q.c_in / g, q.kernel_h, q.kernel_w}
                       : memory::dims{q.c_out, q.c_in, q.kernel_h, q.kernel_w};
    }
    tag wtag() const { return q.groups > 1 ? tag::goihw : tag::oihw; }

    // The numpy-side layouts of the input and output (or grad_output) activations.
    memory::desc src_user() const {
        return memory::desc({q.n, q.c_in, q.h, q.w}, dt::f32,
                            q.src_channels_last ? tag::nhwc : tag::nchw);
    }
    memory::desc dst_user() const {
        return memory::desc({q.n, q.c_out, q.out_h(), q.out_w()}, dt::f32,
                            q.dst_channels_last ? tag::nhwc : tag::nchw);
    }
    // The primitive-side layout asked for an activation: oneDNN's choice (``any``), except for a
    // channels-last array, which the primitive reads or writes in place when ``fixed``.
    static memory::desc want(const memory::desc& user, bool cl, bool fixed) {
        return cl && fixed ? user : memory::desc(user.get_dims(), dt::f32, tag::any);
    }

    explicit Conv(const ConvGeometry& g) : q(g) {
        auto& e = engine();
        memory::dims wei = wdims();
        memory::desc wei_any(wei, dt::f32, tag::any), bias_md({q.c_out}, dt::f32, tag::x);
        dnnl::primitive_attr attr = scratch_attr();
        if (q.relu) {
            dnnl::post_ops po;
            po.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
            attr.set_post_ops(po);
        }
        using FwdPD = dnnl::convolution_forward::primitive_desc;
        fwd_pd = choose_pd<FwdPD>(
            [&](int fix) {
                return FwdPD(e, dnnl::prop_kind::forward_training,
                             dnnl::algorithm::convolution_direct,
                             want(src_user(), q.src_channels_last, fix & 1), wei_any,
                             q.bias ? bias_md : memory::desc(),
                             want(dst_user(), q.dst_channels_last, fix & 2), strides(), dil(),
                             pl(), pr(), attr);
            },
            [&](const FwdPD& pd) {
                return (q.src_channels_last && !same_bytes(src_user(), pd.src_desc()) ? 1 : 0) |
                       (q.dst_channels_last && !same_bytes(dst_user(), pd.dst_desc()) ? 2 : 0);
            });
        fwd = dnnl::convolution_forward(fwd_pd);
        f_src.init(src_user(), fwd_pd.src_desc(), true, false);
        f_wei.init(memory::desc(wei, dt::f32, wtag()), fwd_pd.weights_desc(), true, false);
        f_dst.init(dst_user(), fwd_pd.dst_desc(), false, true);
        use_arena(f_src);
        use_arena(f_dst);
        f_bias = memory(bias_md, e, DNNL_MEMORY_NONE);
    }
    memory::dims strides() const { return {q.stride_h, q.stride_w}; }
    memory::dims dil() const { return {q.dilation_h - 1, q.dilation_w - 1}; }
    memory::dims pl() const { return {q.pad_top, q.pad_left}; }
    memory::dims pr() const { return {q.pad_bottom, q.pad_right}; }

    void build_bwd() {
        auto& e = engine();
        memory::dims wei = wdims();
        memory::desc wei_any(wei, dt::f32, tag::any), bias_md({q.c_out}, dt::f32, tag::x);
        // A few input channels padded to a 16-channel block waste most of the work (LeNet's
        // first layer: 9 ms blocked vs ~1 ms plain): keep such a gradient in its plain layout.
        const bool plain_dsrc = (q.c_in / q.groups) < 8;
        using BdPD = dnnl::convolution_backward_data::primitive_desc;
        BdPD bd_pd = choose_pd<BdPD>(
            [&](int fix) {
                return BdPD(e, dnnl::algorithm::convolution_direct,
                            plain_dsrc ? src_user()
                                       : want(src_user(), q.src_channels_last, fix & 1),
                            wei_any, want(dst_user(), q.dst_channels_last, fix & 2), strides(),
                            dil(), pl(), pr(), fwd_pd, scratch_attr());
            },
            [&](const BdPD& pd) {
                return (q.src_channels_last && !same_bytes(src_user(), pd.diff_src_desc()) ? 1
                                                                                          : 0) |
                       (q.dst_channels_last && !same_bytes(dst_user(), pd.diff_dst_desc()) ? 2 : 0);
            });
        bwd_data = dnnl::convolution_backward_data(bd_pd);
        d_dst.init(dst_user(), bd_pd.diff_dst_desc(), true, false);
        d_wei.init(memory::desc(wei, dt::f32, wtag()), bd_pd.weights_desc(), true, false);
        d_src.init(src_user(), bd_pd.diff_src_desc(), false, true);
        use_arena(d_dst);
        use_arena(d_src);
        using BwPD = dnnl::convolution_backward_weights::primitive_desc;
        BwPD bw_pd = choose_pd<BwPD>(
            [&](int fix) {
                return BwPD(e, dnnl::algorithm::convolution_direct,
                            want(src_user(), q.src_channels_last, fix & 1), wei_any,
                            q.bias ? bias_md : memory::desc(),
                            want(dst_user(), q.dst_channels_last, fix & 2), strides(), dil(),
                            pl(), pr(), fwd_pd, scratch_attr());
            },
            [&](const BwPD& pd) {
                return (q.src_channels_last && !same_bytes(src_user(), pd.src_desc()) ? 1 : 0) |
                       (q.dst_channels_last && !same_bytes(dst_user(), pd.diff_dst_desc()) ? 2 : 0);
            });
        bwd_wei = dnnl::convolution_backward_weights(bw_pd);
        w_src.init(src_user(), bw_pd.src_desc(), true, false);
        w_ddst.init(dst_user(), bw_pd.diff_dst_desc(), true, false);
        w_dwei.init(memory::desc(wei, dt::f32, wtag()), bw_pd.diff_weights_desc(), false, true);
        use_arena(w_src);
        use_arena(w_ddst);
        // backward data and weights read grad_output in the same layout: reorder it once
        shared_ddst = !d_dst.same && d_dst.prim.get_desc() == w_ddst.prim.get_desc();
        dwei_tmp.resize(q.c_out * (q.c_in / q.groups) * q.kernel_h * q.kernel_w);
        dbias_tmp.resize(q.c_out);
        w_dbias = memory(bias_md, e, dbias_tmp.data());
        have_bwd = true;
    }
};

std::map<ConvGeometry, std::unique_ptr<Conv>>& conv_cache() {
    static std::map<ConvGeometry, std::unique_ptr<Conv>> c;
    return c;
}

Conv& get_conv(const ConvGeometry& key) {
    auto& cache = conv_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    auto* p = new Conv(check_conv(key));
    cache[key].reset(p);
    return *p;
}

// Bytes of input + output per batch chunk (0: the whole batch at once; -1, the default: 1 MB on
// one thread, the whole batch on more).  The batch is cut into chunks whose NCHW <-> blocked
// reorders stay in the L2 cache instead of going through main memory (ResNet-20 training, 1
// thread: -6% time); the weights are reordered once per call.  With 2 threads on a shared
// machine the many short parallel regions cost more than that (training took 2x as long).
int64_t& conv_chunk_setting() {
    static int64_t bytes = -1;
    return bytes;
}

size_t conv_chunk_bytes() {
    const int64_t v = conv_chunk_setting();
    if (v >= 0) return (size_t)v;
    return omp_get_max_threads() == 1 ? (size_t)1 << 20 : 0;
}

// The primitives of the chunks of geometry ``geom`` (one for full chunks, one for the rest),
// and the chunk size.
struct Chunks {
    ConvGeometry q;   // the whole batch
    int64_t size;
    Conv* full;
    Conv* rest;
};

Chunks conv_chunks(const ConvGeometry& geom) {
    const ConvGeometry& q = check_conv(geom);
    ConvGeometry part = geom;  // the geometry of one chunk
    auto& cache = conv_cache();
    if (cache.size() > 256) cache.clear();  // a model has a handful of shapes; bound the memory
    const size_t per =
        (size_t)(q.c_in * q.h * q.w + q.c_out * q.out_h() * q.out_w()) * sizeof(float);
    int64_t size = q.n;
    if (conv_chunk_bytes() > 0)
        size = std::max<int64_t>(1, std::min<int64_t>(q.n, conv_chunk_bytes() / per));
    part.n = size;
    Conv* full = &get_conv(part);
    Conv* rest = nullptr;
    if (q.n % size) {
        part.n = q.n % size;
        rest = &get_conv(part);
    }
    return {q, size, full, rest};
}

void conv_forward(py::array x, py::array w, py::object b, py::array out,
                  const ConvGeometry& geom) {
    KernelLock guard;
    Chunks ch = conv_chunks(geom);
    const ConvGeometry& q = ch.q;
    float* px = data_of(x, "conv input", src_shape(q), false);
    float* pw = data_of(w, "conv weight", wei_shape(q), false);
    float* po = data_of(out, "conv output", dst_shape(q), true);
    float* pb = nullptr;
    if (q.bias) pb = data_of(b.cast<py::array>(), "conv bias", {q.c_out}, false);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    bool weights_ready[2] = {false, false};
    for (int64_t start = 0; start < q.n; start += ch.size) {
        const int which = (q.n - start < ch.size) ? 1 : 0;
        Conv& cv = which ? *ch.rest : *ch.full;
        std::unordered_map<int, memory> args;
        bind_slot(cv.f_src, 0);
        bind_slot(cv.f_dst, 1);
        args[DNNL_ARG_SRC] = cv.f_src.bind(px + start * q.c_in * q.h * q.w, s, true);
        args[DNNL_ARG_WEIGHTS] = cv.f_wei.bind(pw, s, !weights_ready[which]);
        weights_ready[which] = true;
        args[DNNL_ARG_DST] = cv.f_dst.out(po + start * q.c_out * q.out_h() * q.out_w());
        if (q.bias) {
            cv.f_bias.set_data_handle(pb);
            args[DNNL_ARG_BIAS] = cv.f_bias;
        }
        run(cv.fwd, s, args);
        cv.f_dst.finish(s);
    }
    s.wait();
}

// One chunk of backward: data (pi != nullptr) and / or weights (pgw != nullptr; accumulates +=
// into pgw / pgb, as the module contract wants).  With both, grad_output is reordered to the
// blocked layout once.  ``reorder_wei``: the weights are not yet in this primitive's layout.
void conv_backward_run(Conv& cv, dnnl::stream& s, float* px, float* pg, float* pw, float* pi,
                       float* pgw, float* pgb, bool reorder_wei) {
    const ConvGeometry& q = cv.q;
    if (!cv.have_bwd) cv.build_bwd();
    bool reuse = false;  // grad_output already in arena slot 0 in the weights' layout
    if (pgw) {
        std::unordered_map<int, memory> args;
        bind_slot(cv.w_ddst, 0);
        bind_slot(cv.w_src, 1);
        args[DNNL_ARG_SRC] = cv.w_src.bind(px, s, true);
        args[DNNL_ARG_DIFF_DST] = cv.w_ddst.bind(pg, s, true);
        args[DNNL_ARG_DIFF_WEIGHTS] = cv.w_dwei.out(cv.dwei_tmp.data());
        if (q.bias) args[DNNL_ARG_DIFF_BIAS] = cv.w_dbias;
        run(cv.bwd_wei, s, args);
        cv.w_dwei.finish(s);
        reuse = cv.shared_ddst;
    }
    if (pi) {
        std::unordered_map<int, memory> args;
        bind_slot(cv.d_dst, 0);
        bind_slot(cv.d_src, 1);
        if (reuse) {
            args[DNNL_ARG_DIFF_DST] = cv.d_dst.out(pg);  // slot 0 holds it already
        } else {
            args[DNNL_ARG_DIFF_DST] = cv.d_dst.bind(pg, s, true);
        }
        args[DNNL_ARG_WEIGHTS] = cv.d_wei.bind(pw, s, reorder_wei);
        args[DNNL_ARG_DIFF_SRC] = cv.d_src.out(pi);
        run(cv.bwd_data, s, args);
        cv.d_src.finish(s);
    }
    if (pgw) {
        s.wait();
        const size_t nw = cv.dwei_tmp.size();
        for (size_t i = 0; i < nw; ++i) pgw[i] += cv.dwei_tmp[i];
        if (q.bias)
            for (int64_t i = 0; i < q.c_out; ++i) pgb[i] += cv.dbias_tmp[i];
    }
}

void conv_backward_chunks(const Chunks& ch, float* px, float* pg, float* pw, float* pi,
                          float* pgw, float* pgb) {
    const ConvGeometry& q = ch.q;
    dnnl::stream s(engine());
    bool weights_ready[2] = {false, false};
    for (int64_t start = 0; start < q.n; start += ch.size) {
        const int which = (q.n - start < ch.size) ? 1 : 0;
        Conv& cv = which ? *ch.rest : *ch.full;
        const int64_t in = start * q.c_in * q.h * q.w;
        const int64_t out = start * q.c_out * q.out_h() * q.out_w();
        conv_backward_run(cv, s, px ? px + in : nullptr, pg + out, pw, pi ? pi + in : nullptr,
                          pgw, pgb, !weights_ready[which]);
        weights_ready[which] = true;
    }
    s.wait();
}

void conv_backward_data(py::array gout, py::array w, py::array gin, const ConvGeometry& geom) {
    KernelLock guard;
    Chunks ch = conv_chunks(geom);
    const ConvGeometry& q = ch.q;
    float* pg = data_of(gout, "conv grad_output", dst_shape(q), false);
    float* pw = data_of(w, "conv weight", wei_shape(q), false);
    float* pi = data_of(gin, "conv grad_input", src_shape(q), true);
    py::gil_scoped_release nogil;
    conv_backward_chunks(ch, nullptr, pg, pw, pi, nullptr, nullptr);
}

void conv_backward_weights(py::array x, py::array gout, py::array gw, py::object gb,
                           const ConvGeometry& geom) {
    KernelLock guard;
    Chunks ch = conv_chunks(geom);
    const ConvGeometry& q = ch.q;
    float* px = data_of(x, "conv input", src_shape(q), false);
    float* pg = data_of(gout, "conv grad_output", dst_shape(q), false);
    float* pgw = data_of(gw, "conv grad_weight", wei_shape(q), true);
    float* pgb = nullptr;
    if (q.bias) pgb = data_of(gb.cast<py::array>(), "conv grad_bias", {q.c_out}, true);
    py::gil_scoped_release nogil;
    conv_backward_chunks(ch, px, pg, nullptr, nullptr, pgw, pgb);
}

// Both gradients in one call: grad_input written, grad_weight / grad_bias accumulated.
void conv_backward(py::array x, py::array gout, py::array w, py::array gin, py::array gw,
                   py::object gb, const ConvGeometry& geom) {
    KernelLock guard;
    Chunks ch = conv_chunks(geom);
    const ConvGeometry& q = ch.q;
    float* px = data_of(x, "conv input", src_shape(q), false);
    float* pg = data_of(gout, "conv grad_output", dst_shape(q), false);
    float* pw = data_of(w, "conv weight", wei_shape(q), false);
    float* pi = data_of(gin, "conv grad_input", src_shape(q), true);
    float* pgw = data_of(gw, "conv grad_weight", wei_shape(q), true);
    float* pgb = nullptr;
    if (q.bias) pgb = data_of(gb.cast<py::array>(), "conv grad_bias", {q.c_out}, true);
    if (pi == px || pi == pg || pgw == pw)
        throw py::value_error("conv_backward: outputs must not alias the inputs");
    py::gil_scoped_release nogil;
    conv_backward_chunks(ch, px, pg, pw, pi, pgw, pgb);
}

// The oneDNN implementations a convolution of this geometry runs (forward, backward data,
// backward weights), e.g. "jit:avx512_core"; "ref..." would be a plain C++ loop.
std::vector<std::string> conv_impls(const ConvGeometry& geom) {
    KernelLock guard;
    Chunks ch = conv_chunks(geom);
    Conv& cv = *ch.full;
    if (!cv.have_bwd) cv.build_bwd();
    auto impl = [](const dnnl::primitive& p) {
        const char* name = nullptr;
        dnnl_primitive_desc_query(p.get_primitive_desc(), dnnl_query_impl_info_str, 0, &name);
        return std::string(name ? name : "");
    };
    return {impl(cv.fwd), impl(cv.bwd_data), impl(cv.bwd_wei)};
}

void set_conv_chunk_bytes(int64_t bytes) {
    if (bytes < -1) throw py::value_error("set_conv_chunk_bytes: bytes must be >= 0, or -1");
    KernelLock guard;
    conv_chunk_setting() = bytes;
}

// ------------------------------------------------------------------ pooling
std::vector<py::ssize_t> src_shape(const PoolGeometry& q) {
    if (q.channels_last) return {q.n, q.h, q.w, q.c};
    return {q.n, q.c, q.h, q.w};
}
std::vector<py::ssize_t> dst_shape(const PoolGeometry& q) {
    if (q.channels_last) return {q.n, q.out_h, q.out_w, q.c};
    return {q.n, q.c, q.out_h, q.out_w};
}

// The output size is given by Python (ceil mode, SAME...) and padding on the bottom / right is
// extended so that oneDNN produces exactly that size.
const PoolGeometry& check_pool(const PoolGeometry& q) {
    if (q.n < 1 || q.c < 1 || q.h < 1 || q.w < 1 || q.kernel_h < 1 || q.kernel_w < 1 ||
        q.stride_h < 1 || q.stride_w < 1 || q.pad_top < 0 || q.pad_left < 0 ||
        q.pad_bottom < 0 || q.pad_right < 0 || q.out_h < 1 || q.out_w < 1 || q.alg < 0 ||
        q.alg > 2 || q.pad_top >= q.kernel_h || q.pad_left >= q.kernel_w)
        throw py::value_error("pool: invalid geometry");
    if (q.h + q.pad_top + q.pad_bottom < q.kernel_h ||
        q.w + q.pad_left + q.pad_right < q.kernel_w ||
        (q.h + q.pad_top + q.pad_bottom - q.kernel_h) / q.stride_h + 1 != q.out_h ||
        (q.w + q.pad_left + q.pad_right - q.kernel_w) / q.stride_w + 1 != q.out_w)
        throw py::value_error("pool: padding does not match the output size");
    // every window must overlap the input, or max pooling over padding is undefined
    if ((q.out_h - 1) * q.stride_h >= q.h + q.pad_top ||
        (q.out_w - 1) * q.stride_w >= q.w + q.pad_left)
        throw py::value_error("pool: a window lies entirely in the padding");
    return q;
}

struct Pool {
    PoolGeometry q;
    dnnl::pooling_forward::primitive_desc fwd_pd;
    dnnl::pooling_forward fwd;
    dnnl::pooling_backward bwd;
    memory ws;  // a handle only: each layer owns its workspace (two layers may share a shape)
    size_t ws_bytes = 0;
    Port f_src, f_dst, b_ddst, b_dsrc;
    dnnl::algorithm alg() const {
        return q.alg == 0 ? dnnl::algorithm::pooling_max
               : q.alg == 1 ? dnnl::algorithm::pooling_avg_include_padding
                            : dnnl::algorithm::pooling_avg_exclude_padding;
    }
    explicit Pool(const PoolGeometry& g) : q(g) {
        auto& e = engine();
        memory::dims src{q.n, q.c, q.h, q.w}, dst{q.n, q.c, q.out_h, q.out_w};
        const tag t = q.channels_last ? tag::nhwc : tag::nchw;
        memory::desc src_md(src, dt::f32, t), dst_md(dst, dt::f32, t);
        memory::dims k{q.kernel_h, q.kernel_w}, s{q.stride_h, q.stride_w}, d{0, 0},
            pl{q.pad_top, q.pad_left}, pr{q.pad_bottom, q.pad_right};
        const auto prop = q.train ? dnnl::prop_kind::forward_training
                                  : dnnl::prop_kind::forward_inference;
        fwd_pd = dnnl::pooling_forward::primitive_desc(e, prop, alg(), src_md, dst_md, s, k, d,
                                                       pl, pr, scratch_attr());
        fwd = dnnl::pooling_forward(fwd_pd);
        f_src.init(src_md, fwd_pd.src_desc(), true, false);
        f_dst.init(dst_md, fwd_pd.dst_desc(), false, true);
        if (!q.train) return;  // inference: no argmax workspace, no backward
        if (q.alg == 0) {
            ws = memory(fwd_pd.workspace_desc(), e, DNNL_MEMORY_NONE);
            ws_bytes = fwd_pd.workspace_desc().get_size();
        }
        auto bwd_pd = dnnl::pooling_backward::primitive_desc(e, alg(), src_md, dst_md, s, k, d,
                                                             pl, pr, fwd_pd, scratch_attr());
        bwd = dnnl::pooling_backward(bwd_pd);
        b_ddst.init(dst_md, bwd_pd.diff_dst_desc(), true, false);
        b_dsrc.init(src_md, bwd_pd.diff_src_desc(), false, true);
    }
};

std::map<PoolGeometry, std::unique_ptr<Pool>>& pool_cache() {
    static std::map<PoolGeometry, std::unique_ptr<Pool>> c;
    return c;
}

Pool& get_pool(const PoolGeometry& key) {
    auto& cache = pool_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    if (cache.size() > 256) cache.clear();
    auto* p = new Pool(check_pool(key));
    cache[key].reset(p);
    return *p;
}

// Max pooling's argmax workspace is a uint8 numpy buffer owned by the layer: the cached
// primitive is shared by every layer of the same shape, the workspace must not be.
void* workspace_of(Pool& p, py::object ws) {
    if (p.q.alg != 0 || !p.q.train) return nullptr;
    py::array a = ws.cast<py::array>();
    if (a.dtype().kind() != 'u' || a.itemsize() != 1 || a.ndim() != 1 ||
        !(a.flags() & py::array::c_style) || !a.writeable() ||
        (size_t)a.shape(0) != p.ws_bytes)
        throw py::value_error("pool: workspace must be a writable uint8 array of " +
                              std::to_string(p.ws_bytes) + " bytes");
    return a.mutable_data();
}

size_t pool_workspace_size(const PoolGeometry& geom) {
    KernelLock guard;
    return get_pool(geom).ws_bytes;
}

void pool_forward(py::array x, py::array out, py::object ws, const PoolGeometry& geom) {
    KernelLock guard;
    Pool& p = get_pool(geom);
    const PoolGeometry& q = p.q;
    void* pws = workspace_of(p, ws);
    float* px = data_of(x, "pool input", src_shape(q), false);
    float* po = data_of(out, "pool output", dst_shape(q), true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC] = p.f_src.bind(px, s, true);
    args[DNNL_ARG_DST] = p.f_dst.out(po);
    if (q.alg == 0 && q.train) {
        p.ws.set_data_handle(pws);
        args[DNNL_ARG_WORKSPACE] = p.ws;
    }
    run(p.fwd, s, args);
    p.f_dst.finish(s);
    s.wait();
}

void pool_backward(py::array gout, py::array gin, py::object ws, const PoolGeometry& geom) {
    if (!geom.train) throw py::value_error("pool_backward: the geometry says train=False");
    KernelLock guard;
    Pool& p = get_pool(geom);
    const PoolGeometry& q = p.q;
    void* pws = workspace_of(p, ws);
    float* pg = data_of(gout, "pool grad_output", dst_shape(q), false);
    float* pi = data_of(gin, "pool grad_input", src_shape(q), true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_DIFF_DST] = p.b_ddst.bind(pg, s, true);
    args[DNNL_ARG_DIFF_SRC] = p.b_dsrc.out(pi);
    if (q.alg == 0) {
        p.ws.set_data_handle(pws);
        args[DNNL_ARG_WORKSPACE] = p.ws;
    }
    run(p.bwd, s, args);
    p.b_dsrc.finish(s);
    s.wait();
}

// ------------------------------------------------------------------ batch normalization
// Plain loops, for two memory layouts of the activations:
// - NCHW (channels_last false): x is (n, c, l); one channel per OpenMP iteration, each plane a
//   contiguous run.  oneDNN 3.2 has only its generic kernel for plain NCHW batch norm (measured
//   0.4-1.0x the numpy code).
// - channels-last (channels_last true): x is (n * l rows, c) with the channels innermost; the
//   threads split the rows, each sums its rows per channel (vectorized over the channels) into its
//   own partials, which are then added up.  On 1 thread the forward is as fast as oneDNN's nhwc
//   batch norm, the backward 1.2-1.6x slower; oneDNN's batch mean / variance are less precise (up
//   to 1e-5 relative error against double, these loops 6e-8) (benchmarks/bench_bn_layout.py).
// Both read x two times for the statistics (the mean, then the sum of squared deviations: two
// passes, float sums over short runs added up in double) and once more to write the output, and
// fuse the ReLU that follows batch norm in ResNets (forward: max(0, .); backward: the gradient
// masked by output > 0, the output recomputed from x).

// The geometry (BatchNormGeometry, geometry.hpp) and eps checked.
const BatchNormGeometry& check_bn(const BatchNormGeometry& q, double eps) {
    if (q.n < 1 || q.c < 1 || q.l < 1 || !(eps > 0) || !std::isfinite(eps))
        throw py::value_error("batch_norm: invalid geometry (n, c, l >= 1) or eps");
    int64_t rows, size;
    if (__builtin_mul_overflow(q.n, q.l, &rows) || __builtin_mul_overflow(rows, q.c, &size))
        throw py::value_error("batch_norm: geometry too large");
    if (q.train && rows < 2)
        throw py::value_error("batch_norm: training needs more than 1 value per channel");
    return q;
}

// The (n, c, l) or, channels-last, (n, l, c) shape of an activation.
std::vector<py::ssize_t> bn_shape(const BatchNormGeometry& q) {
    if (q.channels_last) return {q.n, q.l, q.c};
    return {q.n, q.c, q.l};
}

// ``g`` where ``y`` > 0 (as a float: -0.0 and negatives masked), else 0: integer bit ops, so that
// the loops vectorize at -O2 (a ?: there is a branch per element, 10x slower on random signs).
inline float relu_masked(float g, float y) {
    int32_t gb, yb;
    std::memcpy(&gb, &g, 4);
    std::memcpy(&yb, &y, 4);
    gb &= -(int32_t)(yb > 0);
    float r;
    std::memcpy(&r, &gb, 4);
    return r;
}

// Channels-last row kernels: ``rows`` rows of ``c`` floats, per-channel vectors of ``c``.  Each
// is built for AVX-512, AVX2 and generic x86-64 (the build flags are generic) and picked at
// first call by max_isa() (common.hpp): the CPU's widest, or the one WORKBENCH_MAX_CPU_ISA /
// ONEDNN_MAX_CPU_ISA caps it at, so an AVX-512 machine can measure its AVX2 code.  No FMA
// contraction, so that x * a + b rounds as in the NCHW loops (an exact 0 stays 0 for the ReLU)
// and every variant gives the same bits.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define WBN_FP_STRICT optimize("fp-contract=off")
#define WBN_BN_VARIANTS(NAME, PARAMS, BODY)                                                  \
    __attribute__((target("avx512f"), WBN_FP_STRICT)) void NAME##_avx512 PARAMS BODY         \
    __attribute__((target("avx2"), WBN_FP_STRICT)) void NAME##_avx2 PARAMS BODY              \
    __attribute__((WBN_FP_STRICT)) void NAME##_generic PARAMS BODY                          \
    void NAME PARAMS {                                                                      \
        static const auto fn = max_isa() == Isa::avx512 ? NAME##_avx512                     \
                               : max_isa() == Isa::avx2 ? NAME##_avx2 : NAME##_generic;     \
        fn WBN_BN_ARGS_##NAME;                                                              \
    }
#else
#define WBN_BN_VARIANTS(NAME, PARAMS, BODY) void NAME PARAMS BODY
#endif

// Rows per float partial sum before it is added to the double total.
constexpr int64_t kBnBlock = 64;

// 16 channels as one vector (one AVX-512 register, two AVX2 or four SSE ones), loaded and stored
// unaligned; the channels past the last multiple of 16 take scalar loops.
typedef float BnVec __attribute__((vector_size(64)));
typedef int32_t BnMask __attribute__((vector_size(64)));
typedef float BnVecU __attribute__((vector_size(64), aligned(4), may_alias));
constexpr int64_t kBnLanes = 16;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // always inlined: no vector crosses a call (to the pop)
inline __attribute__((always_inline)) BnVec bn_load(const float* p) { return *(const BnVecU*)p; }
inline __attribute__((always_inline)) void bn_store(float* p, BnVec v) { *(BnVecU*)p = v; }
// relu_masked on 16 lanes: g where y's bits, as int32, are > 0
inline BnVec bn_relu_masked(BnVec g, BnVec y) { return (BnVec)((BnMask)g & ((BnMask)y > 0)); }
// std::max(y, 0.0f) on 16 lanes (0 where y < 0; -0.0 and NaN kept)
inline BnVec bn_relu(BnVec y) {
    const BnVec zero = {};
    return (BnVec)((BnMask)y & ~(y < zero));
}

// Per-channel sum of the rows (SQ false) or of their squared deviations from ``m`` (SQ true),
// added to ``acc`` in double (float partial sums over kBnBlock rows).
template <bool SQ>
inline __attribute__((always_inline)) void nhwc_sum_t(const float* x, int64_t rows, int64_t c,
                                                      const float* m, double* acc) {
    const int64_t cv = c - c % kBnLanes;
    for (int64_t r0 = 0; r0 < rows; r0 += kBnBlock) {
        const int64_t r1 = std::min(rows, r0 + kBnBlock);
        for (int64_t ch = 0; ch < cv; ch += kBnLanes) {
            BnVec mv = {};
            if (SQ) mv = bn_load(m + ch);
            BnVec s0 = {}, s1 = {};
            int64_t r = r0;
            for (; r + 1 < r1; r += 2) {
                const BnVec d0 = bn_load(x + r * c + ch) - mv;
                const BnVec d1 = bn_load(x + (r + 1) * c + ch) - mv;
                s0 += SQ ? d0 * d0 : d0;
                s1 += SQ ? d1 * d1 : d1;
            }
            if (r < r1) {
                const BnVec d0 = bn_load(x + r * c + ch) - mv;
                s0 += SQ ? d0 * d0 : d0;
            }
            const BnVec s = s0 + s1;
            for (int64_t k = 0; k < kBnLanes; ++k) acc[ch + k] += s[k];
        }
        for (int64_t ch = cv; ch < c; ++ch) {
            const float mc = SQ ? m[ch] : 0.0f;
            float s = 0;
            for (int64_t r = r0; r < r1; ++r) {
                const float d = x[r * c + ch] - mc;
                s += SQ ? d * d : d;
            }
            acc[ch] += s;
        }
    }
}

#define WBN_BN_ARGS_nhwc_sum (x, rows, c, m, acc)
WBN_BN_VARIANTS(nhwc_sum, (const float* x, int64_t rows, int64_t c, const float* m,
                            double* acc), {
    if (m)
        nhwc_sum_t<true>(x, rows, c, m, acc);
    else
        nhwc_sum_t<false>(x, rows, c, m, acc);
})

// out = x * a + b per channel, max(0, .) with RELU.  By blocks of rows, one 16-channel slice
// at a time (its coefficients stay in registers; the block stays in L1 between slices).
template <bool RELU>
inline __attribute__((always_inline)) void nhwc_apply_t(const float* x, float* o, int64_t rows,
                                                        int64_t c, const float* a,
                                                        const float* b) {
    const int64_t cv = c - c % kBnLanes;
    for (int64_t r0 = 0; r0 < rows; r0 += kBnBlock) {
        const int64_t r1 = std::min(rows, r0 + kBnBlock);
        for (int64_t ch = 0; ch < cv; ch += kBnLanes) {
            const BnVec av = bn_load(a + ch), bv = bn_load(b + ch);
            for (int64_t r = r0; r < r1; ++r) {
                const BnVec v = bn_load(x + r * c + ch) * av + bv;
                bn_store(o + r * c + ch, RELU ? bn_relu(v) : v);
            }
        }
        if (cv < c)
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t ch = cv; ch < c; ++ch) {
                    const float v = x[r * c + ch] * a[ch] + b[ch];
                    o[r * c + ch] = RELU ? std::max(v, 0.0f) : v;
                }
    }
}

#define WBN_BN_ARGS_nhwc_apply (x, o, rows, c, a, b, relu)
WBN_BN_VARIANTS(nhwc_apply, (const float* x, float* o, int64_t rows, int64_t c, const float* a,
                              const float* b, bool relu), {
    if (relu)
        nhwc_apply_t<true>(x, o, rows, c, a, b);
    else
        nhwc_apply_t<false>(x, o, rows, c, a, b);
})

// sum(g) and sum(g * (x - m)) per channel, g masked by the ReLU (output x * a + b > 0) with
// RELU; added to acc_g / acc_gx in double (float partial sums over kBnBlock rows).
template <bool RELU>
inline __attribute__((always_inline)) void nhwc_grad_sums_t(
    const float* x, const float* g, int64_t rows, int64_t c, const float* m, const float* a,
    const float* b, double* acc_g, double* acc_gx) {
    const int64_t cv = c - c % kBnLanes;
    for (int64_t r0 = 0; r0 < rows; r0 += kBnBlock) {
        const int64_t r1 = std::min(rows, r0 + kBnBlock);
        for (int64_t ch = 0; ch < cv; ch += kBnLanes) {
            const BnVec mv = bn_load(m + ch);
            BnVec av = {}, bv = {};
            if (RELU) {
                av = bn_load(a + ch);
                bv = bn_load(b + ch);
            }
            BnVec t0 = {}, t1 = {}, u0 = {}, u1 = {};
            int64_t r = r0;
            for (; r + 1 < r1; r += 2) {
                const BnVec p0 = bn_load(x + r * c + ch), p1 = bn_load(x + (r + 1) * c + ch);
                BnVec g0 = bn_load(g + r * c + ch), g1 = bn_load(g + (r + 1) * c + ch);
                if (RELU) {
                    g0 = bn_relu_masked(g0, p0 * av + bv);
                    g1 = bn_relu_masked(g1, p1 * av + bv);
                }
                t0 += g0;
                t1 += g1;
                u0 += g0 * (p0 - mv);
                u1 += g1 * (p1 - mv);
            }
            if (r < r1) {
                const BnVec p0 = bn_load(x + r * c + ch);
                BnVec g0 = bn_load(g + r * c + ch);
                if (RELU) g0 = bn_relu_masked(g0, p0 * av + bv);
                t0 += g0;
                u0 += g0 * (p0 - mv);
            }
            const BnVec t = t0 + t1, u = u0 + u1;
            for (int64_t k = 0; k < kBnLanes; ++k) {
                acc_g[ch + k] += t[k];
                acc_gx[ch + k] += u[k];
            }
        }
        for (int64_t ch = cv; ch < c; ++ch) {
            float t = 0, u = 0;
            for (int64_t r = r0; r < r1; ++r) {
                const float p = x[r * c + ch];
                const float gj = RELU ? relu_masked(g[r * c + ch], p * a[ch] + b[ch])
                                      : g[r * c + ch];
                t += gj;
                u += gj * (p - m[ch]);
            }
            acc_g[ch] += t;
            acc_gx[ch] += u;
        }
    }
}

#define WBN_BN_ARGS_nhwc_grad_sums (x, g, rows, c, m, a, b, relu, acc_g, acc_gx)
WBN_BN_VARIANTS(nhwc_grad_sums, (const float* x, const float* g, int64_t rows, int64_t c,
                                  const float* m, const float* a, const float* b, bool relu,
                                  double* acc_g, double* acc_gx), {
    if (relu)
        nhwc_grad_sums_t<true>(x, g, rows, c, m, a, b, acc_g, acc_gx);
    else
        nhwc_grad_sums_t<false>(x, g, rows, c, m, a, b, acc_g, acc_gx);
})

// grad_input = a * (g - k1 - (x - m) * k2), g masked as above with RELU; ``gi`` may be ``g``
// (each element read before it is written).  Blocked as nhwc_apply_t.
template <bool RELU>
inline __attribute__((always_inline)) void nhwc_grad_apply_t(
    const float* x, const float* g, float* gi, int64_t rows, int64_t c, const float* m,
    const float* a, const float* b, const float* k1, const float* k2) {
    const int64_t cv = c - c % kBnLanes;
    for (int64_t r0 = 0; r0 < rows; r0 += kBnBlock) {
        const int64_t r1 = std::min(rows, r0 + kBnBlock);
        for (int64_t ch = 0; ch < cv; ch += kBnLanes) {
            const BnVec av = bn_load(a + ch), mv = bn_load(m + ch), k1v = bn_load(k1 + ch),
                        k2v = bn_load(k2 + ch);
            BnVec bv = {};
            if (RELU) bv = bn_load(b + ch);
            for (int64_t r = r0; r < r1; ++r) {
                const BnVec pv = bn_load(x + r * c + ch);
                BnVec gv = bn_load(g + r * c + ch);
                if (RELU) gv = bn_relu_masked(gv, pv * av + bv);
                bn_store(gi + r * c + ch, av * (gv - k1v - (pv - mv) * k2v));
            }
        }
        if (cv < c)
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t ch = cv; ch < c; ++ch) {
                    const float p = x[r * c + ch];
                    const float gj = RELU ? relu_masked(g[r * c + ch], p * a[ch] + b[ch])
                                          : g[r * c + ch];
                    gi[r * c + ch] = a[ch] * (gj - k1[ch] - (p - m[ch]) * k2[ch]);
                }
    }
}

#define WBN_BN_ARGS_nhwc_grad_apply (x, g, gi, rows, c, m, a, b, k1, k2, relu)
WBN_BN_VARIANTS(nhwc_grad_apply, (const float* x, const float* g, float* gi, int64_t rows,
                                   int64_t c, const float* m, const float* a, const float* b,
                                   const float* k1, const float* k2, bool relu), {
    if (relu)
        nhwc_grad_apply_t<true>(x, g, gi, rows, c, m, a, b, k1, k2);
    else
        nhwc_grad_apply_t<false>(x, g, gi, rows, c, m, a, b, k1, k2);
})

#pragma GCC diagnostic pop

// Threads for ``rows`` rows of ``c`` floats: one per 16K floats at least.
int bn_threads(int64_t rows, int64_t c) {
    const int64_t by_size = std::max<int64_t>(1, rows * c / 16384);
    return (int)std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(),
                                                       std::min(by_size, rows)));
}

// Per-thread partial sums: ``k`` vectors of c doubles per thread, padded to 64 bytes so that two
// threads never write the same cache line.
struct BnPartials {
    int64_t stride;
    int nt, k;
    std::vector<double> d;
    BnPartials(int nt_, int k_, int64_t c)
        : stride((c + 7) / 8 * 8), nt(nt_), k(k_), d((size_t)nt_ * k_ * stride, 0.0) {}
    double* dsum(int t, int i) { return d.data() + ((size_t)t * k + i) * stride; }
    double total(int i, int64_t ch) {  // over every thread (the idle ones hold zeros)
        double s = 0;
        for (int t = 0; t < nt; ++t) s += dsum(t, i)[ch];
        return s;
    }
};

void bn_forward_nhwc(const BatchNormGeometry& q, const float* px, float* po, float* pm, float* pv,
                     const float* ps, const float* pt, float e) {
    const int64_t c = q.c, rows = q.n * q.l;
    const double count = (double)rows;
    std::vector<float> m(c), a(c), b(c);
    auto scale_shift = [&](int64_t ch, float mean, float var) {
        const float inv = 1.0f / std::sqrt(var + e);
        a[ch] = q.affine ? ps[ch] * inv : inv;
        b[ch] = (q.affine ? pt[ch] : 0.0f) - mean * a[ch];
    };
    if (!q.train)
        for (int64_t ch = 0; ch < c; ++ch) scale_shift(ch, pm[ch], pv[ch]);
    const int nt = bn_threads(rows, c);
    BnPartials part(q.train ? nt : 0, 1, c);
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t r0 = rows * t / T, r1 = rows * (t + 1) / T;
        const float* xt = px + r0 * c;
        if (q.train) {
            nhwc_sum(xt, r1 - r0, c, nullptr, part.dsum(t, 0));
#pragma omp barrier
#pragma omp single
            for (int64_t ch = 0; ch < c; ++ch) m[ch] = (float)(part.total(0, ch) / count);
            // (the single's implied barrier: every thread has the mean)
            std::fill(part.dsum(t, 0), part.dsum(t, 0) + c, 0.0);
#pragma omp barrier
            nhwc_sum(xt, r1 - r0, c, m.data(), part.dsum(t, 0));
#pragma omp barrier
#pragma omp single
            for (int64_t ch = 0; ch < c; ++ch) {
                const float v = (float)(part.total(0, ch) / count);
                pm[ch] = m[ch];
                pv[ch] = v;
                scale_shift(ch, m[ch], v);
            }
        }
        nhwc_apply(xt, po + r0 * c, r1 - r0, c, a.data(), b.data(), q.relu);
    }
}

void bn_backward_nhwc(const BatchNormGeometry& q, const float* px, const float* pg, const float* pm,
                      const float* pv, const float* ps, const float* pt, float* pi, float* pds,
                      float* pdt, float e) {
    const int64_t c = q.c, rows = q.n * q.l;
    const double count = (double)rows;
    std::vector<float> a(c), b(c), k1(c), k2(c), inv(c);
    for (int64_t ch = 0; ch < c; ++ch) {
        inv[ch] = 1.0f / std::sqrt(pv[ch] + e);
        a[ch] = q.affine ? ps[ch] * inv[ch] : inv[ch];
        b[ch] = (pt ? pt[ch] : 0.0f) - pm[ch] * a[ch];
    }
    const int nt = bn_threads(rows, c);
    BnPartials part(nt, 2, c);
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t r0 = rows * t / T, r1 = rows * (t + 1) / T;
        nhwc_grad_sums(px + r0 * c, pg + r0 * c, r1 - r0, c, pm, a.data(), b.data(), q.relu,
                       part.dsum(t, 0), part.dsum(t, 1));
#pragma omp barrier
#pragma omp single
        for (int64_t ch = 0; ch < c; ++ch) {
            const double sg = part.total(0, ch), sgx = part.total(1, ch);
            if (q.affine) {
                pds[ch] = (float)(sgx * inv[ch]);
                pdt[ch] = (float)sg;
            }
            k1[ch] = (float)(sg / count);
            k2[ch] = (float)(sgx * inv[ch] * inv[ch] / count);
        }
        nhwc_grad_apply(px + r0 * c, pg + r0 * c, pi + r0 * c, r1 - r0, c, pm, a.data(),
                        b.data(), k1.data(), k2.data(), q.relu);
    }
}

// x and out are (n, c, l), or (n, l, c) when the geometry is channels_last.  Training writes the
// batch mean and biased variance to mean / var; inference reads them
// (the running statistics).
void bn_forward(py::array x, py::array out, py::array mean, py::array var, py::object scale,
                py::object shift, const BatchNormGeometry& geom, double eps) {
    const BatchNormGeometry& q = check_bn(geom, eps);
    const float* px = data_of(x, "batch_norm input", bn_shape(q), false);
    float* po = data_of(out, "batch_norm output", bn_shape(q), true);
    float* pm = data_of(mean, "batch_norm mean", {q.c}, q.train);
    float* pv = data_of(var, "batch_norm var", {q.c}, q.train);
    const float *ps = nullptr, *pt = nullptr;
    if (q.affine) {
        ps = data_of(scale.cast<py::array>(), "batch_norm weight", {q.c}, false);
        pt = data_of(shift.cast<py::array>(), "batch_norm bias", {q.c}, false);
    }
    const float e = (float)eps;
    py::gil_scoped_release nogil;
    use_process_threads();
    if (q.channels_last) {
        bn_forward_nhwc(q, px, po, pm, pv, ps, pt, e);
        return;
    }
    const int64_t n = q.n, c = q.c, l = q.l;
    const double count = (double)n * (double)l;
#pragma omp parallel for schedule(static)
    for (int64_t ch = 0; ch < c; ++ch) {
        float m, v;
        if (q.train) {
            double sum = 0;
            for (int64_t i = 0; i < n; ++i) {
                const float* p = px + (i * c + ch) * l;
                float t = 0;
#pragma omp simd reduction(+ : t)
                for (int64_t j = 0; j < l; ++j) t += p[j];
                sum += t;
            }
            m = (float)(sum / count);
            double sq = 0;
            for (int64_t i = 0; i < n; ++i) {
                const float* p = px + (i * c + ch) * l;
                float t = 0;
#pragma omp simd reduction(+ : t)
                for (int64_t j = 0; j < l; ++j) t += (p[j] - m) * (p[j] - m);
                sq += t;
            }
            v = (float)(sq / count);
            pm[ch] = m;
            pv[ch] = v;
        } else {
            m = pm[ch];
            v = pv[ch];
        }
        const float inv = 1.0f / std::sqrt(v + e);
        const float a = q.affine ? ps[ch] * inv : inv;
        const float b = (q.affine ? pt[ch] : 0.0f) - m * a;
        for (int64_t i = 0; i < n; ++i) {
            const float* p = px + (i * c + ch) * l;
            float* o = po + (i * c + ch) * l;
            if (q.relu) {
#pragma omp simd
                for (int64_t j = 0; j < l; ++j) o[j] = std::max(p[j] * a + b, 0.0f);
            } else {
#pragma omp simd
                for (int64_t j = 0; j < l; ++j) o[j] = p[j] * a + b;
            }
        }
    }
}

// Training-mode backward: grad_input, and (affine) the weight / bias gradients written (not
// accumulated) to dscale / dshift.  With the fused ReLU, grad_output is masked where the forward's
// output was 0 (recomputed from x, mean, var, weight and ``bias``).  grad_input may be
// grad_output's own buffer (every element is read before it is written at the same index).
// grad_output and grad_input have x's layout (channels-last or not).
void bn_backward(py::array x, py::array gout, py::array mean, py::array var, py::object scale,
                 py::array gin, py::object dscale, py::object dshift, const BatchNormGeometry& geom,
                 double eps, py::object shift) {
    const BatchNormGeometry& q = check_bn(geom, eps);
    if (!q.train) throw py::value_error("batch_norm: native backward is for training mode");
    const float* px = data_of(x, "batch_norm input", bn_shape(q), false);
    const float* pg = data_of(gout, "batch_norm grad_output", bn_shape(q), false);
    const float* pm = data_of(mean, "batch_norm mean", {q.c}, false);
    const float* pv = data_of(var, "batch_norm var", {q.c}, false);
    float* pi = data_of(gin, "batch_norm grad_input", bn_shape(q), true);
    const float* ps = nullptr;
    float *pds = nullptr, *pdt = nullptr;
    if (q.affine) {
        ps = data_of(scale.cast<py::array>(), "batch_norm weight", {q.c}, false);
        pds = data_of(dscale.cast<py::array>(), "batch_norm grad_weight", {q.c}, true);
        pdt = data_of(dshift.cast<py::array>(), "batch_norm grad_bias", {q.c}, true);
    }
    const float* pt = nullptr;
    if (q.affine && q.relu) pt = data_of(shift.cast<py::array>(), "batch_norm bias", {q.c}, false);
    if (pi == px) throw py::value_error("batch_norm: grad_input must not alias the input");
    const float e = (float)eps;
    py::gil_scoped_release nogil;
    use_process_threads();
    if (q.channels_last) {
        bn_backward_nhwc(q, px, pg, pm, pv, ps, pt, pi, pds, pdt, e);
        return;
    }
    const int64_t n = q.n, c = q.c, l = q.l;
    const double count = (double)n * (double)l;
#pragma omp parallel for schedule(static)
    for (int64_t ch = 0; ch < c; ++ch) {
        const float m = pm[ch], inv = 1.0f / std::sqrt(pv[ch] + e);
        // the forward's scale and shift, computed the same way, so that the ReLU's mask
        // (output > 0) is recomputed from x exactly instead of reading the output back
        const float a = q.affine ? ps[ch] * inv : inv;
        const float b = (pt ? pt[ch] : 0.0f) - m * a;
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < n; ++i) {
            const int64_t off = (i * c + ch) * l;
            const float *p = px + off, *g = pg + off;
            float t = 0, u = 0;
            if (q.relu) {
#pragma omp simd reduction(+ : t, u)
                for (int64_t j = 0; j < l; ++j) {
                    const float gj = relu_masked(g[j], p[j] * a + b);
                    t += gj;
                    u += gj * (p[j] - m);
                }
            } else {
#pragma omp simd reduction(+ : t, u)
                for (int64_t j = 0; j < l; ++j) {
                    t += g[j];
                    u += g[j] * (p[j] - m);
                }
            }
            sg += t;
            sgx += u;
        }
        const float dshift_c = (float)sg, dscale_c = (float)(sgx * inv);
        if (q.affine) {
            pds[ch] = dscale_c;
            pdt[ch] = dshift_c;
        }
        const float k1 = (float)(sg / count), k2 = (float)(sgx * inv * inv / count);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t off = (i * c + ch) * l;
            const float *p = px + off, *g = pg + off;
            float* o = pi + off;
            if (q.relu) {
#pragma omp simd
                for (int64_t j = 0; j < l; ++j) {
                    const float gj = relu_masked(g[j], p[j] * a + b);
                    o[j] = a * (gj - k1 - (p[j] - m) * k2);
                }
            } else {
#pragma omp simd
                for (int64_t j = 0; j < l; ++j) o[j] = a * (g[j] - k1 - (p[j] - m) * k2);
            }
        }
    }
}

}  // namespace

void register_conv_pool(py::module_& m) {
    m.def("conv_forward", &conv_forward, py::arg("x"), py::arg("weight"), py::arg("bias"),
          py::arg("out"), py::arg("geometry"));
    m.def("conv_backward_data", &conv_backward_data, py::arg("grad_output"), py::arg("weight"),
          py::arg("grad_input"), py::arg("geometry"));
    m.def("conv_backward_weights", &conv_backward_weights, py::arg("x"), py::arg("grad_output"),
          py::arg("grad_weight"), py::arg("grad_bias"), py::arg("geometry"));
    m.def("conv_backward", &conv_backward, py::arg("x"), py::arg("grad_output"),
          py::arg("weight"), py::arg("grad_input"), py::arg("grad_weight"), py::arg("grad_bias"),
          py::arg("geometry"));
    m.def("conv_impls", &conv_impls, py::arg("geometry"),
          "oneDNN implementation names of (forward, backward data, backward weights).");
    m.def("set_conv_chunk_bytes", &set_conv_chunk_bytes, py::arg("bytes"),
          "Input + output bytes per batch chunk of the convolutions (0: whole batch; -1: "
          "automatic, 1 MB on one thread, whole batch on more).");
    m.def("get_conv_chunk_bytes", []() { return conv_chunk_setting(); });
    m.def("pool_workspace_size", &pool_workspace_size, py::arg("geometry"));
    m.def("pool_forward", &pool_forward, py::arg("x"), py::arg("out"), py::arg("workspace"),
          py::arg("geometry"));
    m.def("pool_backward", &pool_backward, py::arg("grad_output"), py::arg("grad_input"),
          py::arg("workspace"), py::arg("geometry"));
    m.def("bn_forward", &bn_forward, py::arg("x"), py::arg("out"), py::arg("mean"),
          py::arg("var"), py::arg("weight"), py::arg("bias"), py::arg("geometry"),
          py::arg("eps"));
    m.def("bn_backward", &bn_backward, py::arg("x"), py::arg("grad_output"), py::arg("mean"),
          py::arg("var"), py::arg("weight"), py::arg("grad_input"), py::arg("grad_weight"),
          py::arg("grad_bias"), py::arg("geometry"), py::arg("eps"),
          py::arg("bias") = py::none());
    static bool once = [] {
        cache_clearers().push_back([] {
            conv_cache().clear(); pool_cache().clear(); arena().clear();
        });
        return true;
    }();
    (void)once;
}

}  // namespace wbn

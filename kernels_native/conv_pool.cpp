// Convolution, pooling and batch normalization on oneDNN (NCHW numpy arrays in and out).
//
// Every entry point takes C-contiguous float32 arrays that Python allocated and checked, plus the
// layer geometry as ints.  The geometry is checked again here (a wrong call raises ValueError,
// never touches memory out of bounds).  Primitives, their blocked-layout scratch memories and the
// reorders between numpy's NCHW and the primitive's preferred layout are built once per shape
// and cached; the GIL is released while a primitive runs.
#include "common.hpp"

namespace wbn {
namespace {

// ------------------------------------------------------------------ convolution
struct ConvGeom {
    int64_t n, c, h, w, o, kh, kw, sh, sw, dh, dw, top, bottom, left, right, g;
    int64_t oh, ow;
    bool bias, relu;
};

ConvGeom conv_geom(const std::vector<int64_t>& v) {
    if (v.size() != 18) throw py::value_error("conv: geometry must have 18 ints");
    ConvGeom q{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12],
               v[13], v[14], v[15], 0, 0, v[16] != 0, v[17] != 0};
    if (q.n < 1 || q.c < 1 || q.h < 1 || q.w < 1 || q.o < 1 || q.kh < 1 || q.kw < 1 ||
        q.sh < 1 || q.sw < 1 || q.dh < 1 || q.dw < 1 || q.top < 0 || q.bottom < 0 ||
        q.left < 0 || q.right < 0 || q.g < 1 || q.c % q.g || q.o % q.g)
        throw py::value_error("conv: invalid geometry");
    q.oh = (q.h + q.top + q.bottom - ((q.kh - 1) * q.dh + 1)) / q.sh + 1;
    q.ow = (q.w + q.left + q.right - ((q.kw - 1) * q.dw + 1)) / q.sw + 1;
    if (q.h + q.top + q.bottom < (q.kh - 1) * q.dh + 1 ||
        q.w + q.left + q.right < (q.kw - 1) * q.dw + 1 || q.oh < 1 || q.ow < 1)
        throw py::value_error("conv: kernel larger than the padded input");
    return q;
}

struct Conv {
    ConvGeom q;
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
    memory w_dbias;
    std::vector<float> dwei_tmp, dbias_tmp;

    memory::dims wdims() const {
        return q.g > 1 ? memory::dims{q.g, q.o / q.g, q.c / q.g, q.kh, q.kw}
                       : memory::dims{q.o, q.c, q.kh, q.kw};
    }
    tag wtag() const { return q.g > 1 ? tag::goihw : tag::oihw; }

    explicit Conv(const ConvGeom& g) : q(g) {
        auto& e = engine();
        memory::dims src{q.n, q.c, q.h, q.w}, dst{q.n, q.o, q.oh, q.ow}, wei = wdims();
        memory::desc src_any(src, dt::f32, tag::any), dst_any(dst, dt::f32, tag::any),
            wei_any(wei, dt::f32, tag::any), bias_md({q.o}, dt::f32, tag::x);
        dnnl::primitive_attr attr;
        if (q.relu) {
            dnnl::post_ops po;
            po.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
            attr.set_post_ops(po);
        }
        fwd_pd = dnnl::convolution_forward::primitive_desc(
            e, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src_any,
            wei_any, q.bias ? bias_md : memory::desc(), dst_any, strides(), dil(), pl(), pr(),
            attr);
        fwd = dnnl::convolution_forward(fwd_pd);
        f_src.init(memory::desc(src, dt::f32, tag::nchw), fwd_pd.src_desc(), true, false);
        f_wei.init(memory::desc(wei, dt::f32, wtag()), fwd_pd.weights_desc(), true, false);
        f_dst.init(memory::desc(dst, dt::f32, tag::nchw), fwd_pd.dst_desc(), false, true);
        f_bias = memory(bias_md, e, DNNL_MEMORY_NONE);
    }
    memory::dims strides() const { return {q.sh, q.sw}; }
    memory::dims dil() const { return {q.dh - 1, q.dw - 1}; }
    memory::dims pl() const { return {q.top, q.left}; }
    memory::dims pr() const { return {q.bottom, q.right}; }

    void build_bwd() {
        auto& e = engine();
        memory::dims src{q.n, q.c, q.h, q.w}, dst{q.n, q.o, q.oh, q.ow}, wei = wdims();
        memory::desc src_any(src, dt::f32, tag::any), dst_any(dst, dt::f32, tag::any),
            wei_any(wei, dt::f32, tag::any), bias_md({q.o}, dt::f32, tag::x);
        // A few input channels padded to a 16-channel block waste most of the work (LeNet's
        // first layer: 9 ms blocked vs ~1 ms plain): keep such a gradient in plain NCHW.
        memory::desc dsrc_md = (q.c / q.g) < 8 ? memory::desc(src, dt::f32, tag::nchw) : src_any;
        auto bd_pd = dnnl::convolution_backward_data::primitive_desc(
            e, dnnl::algorithm::convolution_direct, dsrc_md, wei_any, dst_any, strides(), dil(),
            pl(), pr(), fwd_pd);
        bwd_data = dnnl::convolution_backward_data(bd_pd);
        d_dst.init(memory::desc(dst, dt::f32, tag::nchw), bd_pd.diff_dst_desc(), true, false);
        d_wei.init(memory::desc(wei, dt::f32, wtag()), bd_pd.weights_desc(), true, false);
        d_src.init(memory::desc(src, dt::f32, tag::nchw), bd_pd.diff_src_desc(), false, true);
        auto bw_pd = dnnl::convolution_backward_weights::primitive_desc(
            e, dnnl::algorithm::convolution_direct, src_any, wei_any,
            q.bias ? bias_md : memory::desc(), dst_any, strides(), dil(), pl(), pr(), fwd_pd);
        bwd_wei = dnnl::convolution_backward_weights(bw_pd);
        w_src.init(memory::desc(src, dt::f32, tag::nchw), bw_pd.src_desc(), true, false);
        w_ddst.init(memory::desc(dst, dt::f32, tag::nchw), bw_pd.diff_dst_desc(), true, false);
        w_dwei.init(memory::desc(wei, dt::f32, wtag()), bw_pd.diff_weights_desc(), false, true);
        dwei_tmp.resize(q.o * (q.c / q.g) * q.kh * q.kw);
        dbias_tmp.resize(q.o);
        w_dbias = memory(bias_md, e, dbias_tmp.data());
        have_bwd = true;
    }
};

std::map<std::vector<int64_t>, std::unique_ptr<Conv>>& conv_cache() {
    static std::map<std::vector<int64_t>, std::unique_ptr<Conv>> c;
    return c;
}

Conv& get_conv(const std::vector<int64_t>& key) {
    auto& cache = conv_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    if (cache.size() > 256) cache.clear();  // a model has a handful of shapes; bound the memory
    auto* p = new Conv(conv_geom(key));
    cache[key].reset(p);
    return *p;
}

void conv_forward(py::array x, py::array w, py::object b, py::array out,
                  std::vector<int64_t> geom) {
    std::lock_guard<std::mutex> guard(lock());
    Conv& cv = get_conv(geom);
    const ConvGeom& q = cv.q;
    float* px = data_of(x, "conv input", {q.n, q.c, q.h, q.w}, false);
    float* pw = data_of(w, "conv weight", {q.o, q.c / q.g, q.kh, q.kw}, false);
    float* po = data_of(out, "conv output", {q.n, q.o, q.oh, q.ow}, true);
    float* pb = nullptr;
    if (q.bias) pb = data_of(b.cast<py::array>(), "conv bias", {q.o}, false);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC] = cv.f_src.bind(px, s, true);
    args[DNNL_ARG_WEIGHTS] = cv.f_wei.bind(pw, s, true);
    cv.f_dst.user.set_data_handle(po);
    args[DNNL_ARG_DST] = cv.f_dst.prim;
    if (q.bias) {
        cv.f_bias.set_data_handle(pb);
        args[DNNL_ARG_BIAS] = cv.f_bias;
    }
    cv.fwd.execute(s, args);
    cv.f_dst.finish(s);
    s.wait();
}

void conv_backward_data(py::array gout, py::array w, py::array gin, std::vector<int64_t> geom) {
    std::lock_guard<std::mutex> guard(lock());
    Conv& cv = get_conv(geom);
    const ConvGeom& q = cv.q;
    float* pg = data_of(gout, "conv grad_output", {q.n, q.o, q.oh, q.ow}, false);
    float* pw = data_of(w, "conv weight", {q.o, q.c / q.g, q.kh, q.kw}, false);
    float* pi = data_of(gin, "conv grad_input", {q.n, q.c, q.h, q.w}, true);
    py::gil_scoped_release nogil;
    if (!cv.have_bwd) cv.build_bwd();
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_DIFF_DST] = cv.d_dst.bind(pg, s, true);
    args[DNNL_ARG_WEIGHTS] = cv.d_wei.bind(pw, s, true);
    cv.d_src.user.set_data_handle(pi);
    args[DNNL_ARG_DIFF_SRC] = cv.d_src.prim;
    cv.bwd_data.execute(s, args);
    cv.d_src.finish(s);
    s.wait();
}

// Accumulates (+=) into gw / gb, as the module contract wants.
void conv_backward_weights(py::array x, py::array gout, py::array gw, py::object gb,
                           std::vector<int64_t> geom) {
    std::lock_guard<std::mutex> guard(lock());
    Conv& cv = get_conv(geom);
    const ConvGeom& q = cv.q;
    float* px = data_of(x, "conv input", {q.n, q.c, q.h, q.w}, false);
    float* pg = data_of(gout, "conv grad_output", {q.n, q.o, q.oh, q.ow}, false);
    float* pgw = data_of(gw, "conv grad_weight", {q.o, q.c / q.g, q.kh, q.kw}, true);
    float* pgb = nullptr;
    if (q.bias) pgb = data_of(gb.cast<py::array>(), "conv grad_bias", {q.o}, true);
    py::gil_scoped_release nogil;
    if (!cv.have_bwd) cv.build_bwd();
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC] = cv.w_src.bind(px, s, true);
    args[DNNL_ARG_DIFF_DST] = cv.w_ddst.bind(pg, s, true);
    cv.w_dwei.user.set_data_handle(cv.dwei_tmp.data());
    args[DNNL_ARG_DIFF_WEIGHTS] = cv.w_dwei.prim;
    if (q.bias) args[DNNL_ARG_DIFF_BIAS] = cv.w_dbias;
    cv.bwd_wei.execute(s, args);
    cv.w_dwei.finish(s);
    s.wait();
    const size_t nw = cv.dwei_tmp.size();
    for (size_t i = 0; i < nw; ++i) pgw[i] += cv.dwei_tmp[i];
    if (q.bias)
        for (int64_t i = 0; i < q.o; ++i) pgb[i] += cv.dbias_tmp[i];
}

// ------------------------------------------------------------------ pooling
struct PoolGeom {
    int64_t n, c, h, w, kh, kw, sh, sw, top, bottom, left, right, alg;
    int64_t oh, ow;
};

// The output size is given by Python (ceil mode, SAME...) and padding on the bottom / right is
// extended so that oneDNN produces exactly that size.
PoolGeom pool_geom(const std::vector<int64_t>& v) {
    if (v.size() != 15) throw py::value_error("pool: geometry must have 15 ints");
    PoolGeom q{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12],
               v[13], v[14]};
    if (q.n < 1 || q.c < 1 || q.h < 1 || q.w < 1 || q.kh < 1 || q.kw < 1 || q.sh < 1 ||
        q.sw < 1 || q.top < 0 || q.left < 0 || q.bottom < 0 || q.right < 0 || q.oh < 1 ||
        q.ow < 1 || q.alg < 0 || q.alg > 2 || q.top >= q.kh || q.left >= q.kw)
        throw py::value_error("pool: invalid geometry");
    if (q.h + q.top + q.bottom < q.kh || q.w + q.left + q.right < q.kw ||
        (q.h + q.top + q.bottom - q.kh) / q.sh + 1 != q.oh ||
        (q.w + q.left + q.right - q.kw) / q.sw + 1 != q.ow)
        throw py::value_error("pool: padding does not match the output size");
    // every window must overlap the input, or max pooling over padding is undefined
    if ((q.oh - 1) * q.sh >= q.h + q.top || (q.ow - 1) * q.sw >= q.w + q.left)
        throw py::value_error("pool: a window lies entirely in the padding");
    return q;
}

struct Pool {
    PoolGeom q;
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
    explicit Pool(const PoolGeom& g) : q(g) {
        auto& e = engine();
        memory::dims src{q.n, q.c, q.h, q.w}, dst{q.n, q.c, q.oh, q.ow};
        memory::desc src_md(src, dt::f32, tag::nchw), dst_md(dst, dt::f32, tag::nchw);
        memory::dims k{q.kh, q.kw}, s{q.sh, q.sw}, d{0, 0}, pl{q.top, q.left},
            pr{q.bottom, q.right};
        fwd_pd = dnnl::pooling_forward::primitive_desc(e, dnnl::prop_kind::forward_training,
                                                       alg(), src_md, dst_md, s, k, d, pl, pr);
        fwd = dnnl::pooling_forward(fwd_pd);
        if (q.alg == 0) {
            ws = memory(fwd_pd.workspace_desc(), e, DNNL_MEMORY_NONE);
            ws_bytes = fwd_pd.workspace_desc().get_size();
        }
        auto bwd_pd = dnnl::pooling_backward::primitive_desc(e, alg(), src_md, dst_md, s, k, d,
                                                             pl, pr, fwd_pd);
        bwd = dnnl::pooling_backward(bwd_pd);
        f_src.init(src_md, fwd_pd.src_desc(), true, false);
        f_dst.init(dst_md, fwd_pd.dst_desc(), false, true);
        b_ddst.init(dst_md, bwd_pd.diff_dst_desc(), true, false);
        b_dsrc.init(src_md, bwd_pd.diff_src_desc(), false, true);
    }
};

std::map<std::vector<int64_t>, std::unique_ptr<Pool>>& pool_cache() {
    static std::map<std::vector<int64_t>, std::unique_ptr<Pool>> c;
    return c;
}

Pool& get_pool(const std::vector<int64_t>& key) {
    auto& cache = pool_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    if (cache.size() > 256) cache.clear();
    auto* p = new Pool(pool_geom(key));
    cache[key].reset(p);
    return *p;
}

// Max pooling's argmax workspace is a uint8 numpy buffer owned by the layer: the cached
// primitive is shared by every layer of the same shape, the workspace must not be.
void* workspace_of(Pool& p, py::object ws) {
    if (p.q.alg != 0) return nullptr;
    py::array a = ws.cast<py::array>();
    if (a.dtype().kind() != 'u' || a.itemsize() != 1 || a.ndim() != 1 ||
        !(a.flags() & py::array::c_style) || !a.writeable() ||
        (size_t)a.shape(0) != p.ws_bytes)
        throw py::value_error("pool: workspace must be a writable uint8 array of " +
                              std::to_string(p.ws_bytes) + " bytes");
    return a.mutable_data();
}

size_t pool_workspace_size(std::vector<int64_t> geom) {
    std::lock_guard<std::mutex> guard(lock());
    return get_pool(geom).ws_bytes;
}

void pool_forward(py::array x, py::array out, py::object ws, std::vector<int64_t> geom) {
    std::lock_guard<std::mutex> guard(lock());
    Pool& p = get_pool(geom);
    const PoolGeom& q = p.q;
    void* pws = workspace_of(p, ws);
    float* px = data_of(x, "pool input", {q.n, q.c, q.h, q.w}, false);
    float* po = data_of(out, "pool output", {q.n, q.c, q.oh, q.ow}, true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC] = p.f_src.bind(px, s, true);
    p.f_dst.user.set_data_handle(po);
    args[DNNL_ARG_DST] = p.f_dst.prim;
    if (q.alg == 0) {
        p.ws.set_data_handle(pws);
        args[DNNL_ARG_WORKSPACE] = p.ws;
    }
    p.fwd.execute(s, args);
    p.f_dst.finish(s);
    s.wait();
}

void pool_backward(py::array gout, py::array gin, py::object ws, std::vector<int64_t> geom) {
    std::lock_guard<std::mutex> guard(lock());
    Pool& p = get_pool(geom);
    const PoolGeom& q = p.q;
    void* pws = workspace_of(p, ws);
    float* pg = data_of(gout, "pool grad_output", {q.n, q.c, q.oh, q.ow}, false);
    float* pi = data_of(gin, "pool grad_input", {q.n, q.c, q.h, q.w}, true);
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_DIFF_DST] = p.b_ddst.bind(pg, s, true);
    p.b_dsrc.user.set_data_handle(pi);
    args[DNNL_ARG_DIFF_SRC] = p.b_dsrc.prim;
    if (q.alg == 0) {
        p.ws.set_data_handle(pws);
        args[DNNL_ARG_WORKSPACE] = p.ws;
    }
    p.bwd.execute(s, args);
    p.b_dsrc.finish(s);
    s.wait();
}

// ------------------------------------------------------------------ batch normalization
// x viewed as (N, C, L, 1) in plain NCHW; statistics per channel.  Training: mean and biased
// variance of the batch are written to the caller's arrays (kept by the layer for backward).
struct BatchNorm {
    int64_t n, c, l;
    bool train, affine;
    float eps;
    dnnl::batch_normalization_forward::primitive_desc fwd_pd;
    dnnl::batch_normalization_forward fwd;
    dnnl::batch_normalization_backward bwd;
    memory src, dst, mean, var, scale, shift, dsrc, ddst, dscale, dshift;
    bool have_bwd = false;
    dnnl::normalization_flags flags() const {
        auto f = affine ? (dnnl::normalization_flags::use_scale |
                           dnnl::normalization_flags::use_shift)
                        : dnnl::normalization_flags::none;
        return train ? f : (f | dnnl::normalization_flags::use_global_stats);
    }
    BatchNorm(int64_t n_, int64_t c_, int64_t l_, bool train_, bool affine_, float eps_)
        : n(n_), c(c_), l(l_), train(train_), affine(affine_), eps(eps_) {
        auto& e = engine();
        memory::desc md({n, c, l, 1}, dt::f32, tag::nchw), cmd({c}, dt::f32, tag::x);
        fwd_pd = dnnl::batch_normalization_forward::primitive_desc(
            e, train ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference,
            md, md, eps, flags());
        fwd = dnnl::batch_normalization_forward(fwd_pd);
        for (memory* m : {&src, &dst, &dsrc, &ddst}) *m = memory(md, e, DNNL_MEMORY_NONE);
        for (memory* m : {&mean, &var, &scale, &shift, &dscale, &dshift})
            *m = memory(cmd, e, DNNL_MEMORY_NONE);
    }
    void build_bwd() {
        memory::desc md({n, c, l, 1}, dt::f32, tag::nchw);
        auto pd = dnnl::batch_normalization_backward::primitive_desc(
            engine(), affine ? dnnl::prop_kind::backward : dnnl::prop_kind::backward_data, md,
            md, md, eps, flags(), fwd_pd);
        bwd = dnnl::batch_normalization_backward(pd);
        have_bwd = true;
    }
};

std::map<std::vector<int64_t>, std::unique_ptr<BatchNorm>>& bn_cache() {
    static std::map<std::vector<int64_t>, std::unique_ptr<BatchNorm>> c;
    return c;
}

BatchNorm& get_bn(const std::vector<int64_t>& g, double eps) {
    if (g.size() != 5 || g[0] < 1 || g[1] < 1 || g[2] < 1 || !(eps > 0))
        throw py::value_error("batch_norm: invalid geometry");
    float e32 = (float)eps;
    int32_t bits;
    std::memcpy(&bits, &e32, 4);
    std::vector<int64_t> key(g);
    key.push_back(bits);
    auto& cache = bn_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    if (cache.size() > 256) cache.clear();
    auto* p = new BatchNorm(g[0], g[1], g[2], g[3] != 0, g[4] != 0, e32);
    cache[key].reset(p);
    return *p;
}

// geometry: n, c, l, train, affine.  Training writes mean / var; inference reads them.
void bn_forward(py::array x, py::array out, py::array mean, py::array var, py::object scale,
                py::object shift, std::vector<int64_t> geom, double eps) {
    std::lock_guard<std::mutex> guard(lock());
    BatchNorm& b = get_bn(geom, eps);
    float* px = data_of(x, "batch_norm input", {b.n, b.c, b.l}, false);
    float* po = data_of(out, "batch_norm output", {b.n, b.c, b.l}, true);
    float* pm = data_of(mean, "batch_norm mean", {b.c}, b.train);
    float* pv = data_of(var, "batch_norm var", {b.c}, b.train);
    float *ps = nullptr, *pt = nullptr;
    if (b.affine) {
        ps = data_of(scale.cast<py::array>(), "batch_norm weight", {b.c}, false);
        pt = data_of(shift.cast<py::array>(), "batch_norm bias", {b.c}, false);
    }
    py::gil_scoped_release nogil;
    dnnl::stream s(engine());
    b.src.set_data_handle(px);
    b.dst.set_data_handle(po);
    b.mean.set_data_handle(pm);
    b.var.set_data_handle(pv);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, b.src}, {DNNL_ARG_DST, b.dst},
                                         {DNNL_ARG_MEAN, b.mean}, {DNNL_ARG_VARIANCE, b.var}};
    if (b.affine) {
        b.scale.set_data_handle(ps);
        b.shift.set_data_handle(pt);
        args[DNNL_ARG_SCALE] = b.scale;
        args[DNNL_ARG_SHIFT] = b.shift;
    }
    b.fwd.execute(s, args);
    s.wait();
}

// Training-mode backward: grad_input, and (affine) the weight / bias gradients written (not
// accumulated) to dscale / dshift.
void bn_backward(py::array x, py::array gout, py::array mean, py::array var, py::object scale,
                 py::array gin, py::object dscale, py::object dshift, std::vector<int64_t> geom,
                 double eps) {
    std::lock_guard<std::mutex> guard(lock());
    BatchNorm& b = get_bn(geom, eps);
    if (!b.train) throw py::value_error("batch_norm: native backward is for training mode");
    float* px = data_of(x, "batch_norm input", {b.n, b.c, b.l}, false);
    float* pg = data_of(gout, "batch_norm grad_output", {b.n, b.c, b.l}, false);
    float* pm = data_of(mean, "batch_norm mean", {b.c}, false);
    float* pv = data_of(var, "batch_norm var", {b.c}, false);
    float* pi = data_of(gin, "batch_norm grad_input", {b.n, b.c, b.l}, true);
    float *ps = nullptr, *pds = nullptr, *pdt = nullptr;
    if (b.affine) {
        ps = data_of(scale.cast<py::array>(), "batch_norm weight", {b.c}, false);
        pds = data_of(dscale.cast<py::array>(), "batch_norm grad_weight", {b.c}, true);
        pdt = data_of(dshift.cast<py::array>(), "batch_norm grad_bias", {b.c}, true);
    }
    py::gil_scoped_release nogil;
    if (!b.have_bwd) b.build_bwd();
    dnnl::stream s(engine());
    b.src.set_data_handle(px);
    b.ddst.set_data_handle(pg);
    b.mean.set_data_handle(pm);
    b.var.set_data_handle(pv);
    b.dsrc.set_data_handle(pi);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, b.src}, {DNNL_ARG_DIFF_DST, b.ddst},
                                         {DNNL_ARG_MEAN, b.mean}, {DNNL_ARG_VARIANCE, b.var},
                                         {DNNL_ARG_DIFF_SRC, b.dsrc}};
    if (b.affine) {
        b.scale.set_data_handle(ps);
        b.dscale.set_data_handle(pds);
        b.dshift.set_data_handle(pdt);
        args[DNNL_ARG_SCALE] = b.scale;
        args[DNNL_ARG_DIFF_SCALE] = b.dscale;
        args[DNNL_ARG_DIFF_SHIFT] = b.dshift;
    }
    b.bwd.execute(s, args);
    s.wait();
}

}  // namespace

void register_conv_pool(py::module_& m) {
    m.def("conv_forward", &conv_forward, py::arg("x"), py::arg("weight"), py::arg("bias"),
          py::arg("out"), py::arg("geometry"));
    m.def("conv_backward_data", &conv_backward_data, py::arg("grad_output"), py::arg("weight"),
          py::arg("grad_input"), py::arg("geometry"));
    m.def("conv_backward_weights", &conv_backward_weights, py::arg("x"), py::arg("grad_output"),
          py::arg("grad_weight"), py::arg("grad_bias"), py::arg("geometry"));
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
          py::arg("grad_bias"), py::arg("geometry"), py::arg("eps"));
    static bool once = [] {
        cache_clearers().push_back([] { conv_cache().clear(); pool_cache().clear(); bn_cache().clear(); });
        return true;
    }();
    (void)once;
}

}  // namespace wbn

// LSTM and GRU over a whole sequence on oneDNN (one layer, one direction per primitive).
//
// Layouts are the numpy ones of workbench.nn.recurrent: the input (N, T, D) and the output
// (N, T, H) are oneDNN's "ntc"; states (N, H) are "ldnc" with L = D = 1; the weights (G*H, D)
// and recurrent weights (G*H, H), gates stacked along the rows, are "ldgoi"; the bias (G*H,)
// is "ldgo".  The primitive picks its own weight layout (tag::any) and the weights are
// reordered on every call (they change at every optimizer step).  Gate order is oneDNN's: the
// Python side permutes GRU gates (ours: reset, update, new; oneDNN: update, reset, new).
//
// Kinds: 0 = LSTM (gates i, f, g, o as PyTorch), 1 = GRU (oneDNN vanilla_gru: the reset gate
// multiplies h before U_n), 2 = linear-before-reset GRU (lbr_gru: torch.nn.GRU's formula, bias
// of 4 gates: u, r, n and the recurrent bias of n).
//
// Training forward writes a workspace (a uint8 numpy buffer owned by the layer, as pooling's);
// backward reads it.  Weight gradients are accumulated (+=) into the caller's arrays.
// Primitives are cached per geometry (RnnGeometry) and thread count.
#include "common.hpp"
#include "geometry.hpp"

namespace wbn {
namespace {

// The geometry (RnnGeometry, geometry.hpp) checked.
const RnnGeometry& check_rnn(const RnnGeometry& q) {
    if (q.kind < 0 || q.kind > 2 || q.steps < 1 || q.n < 1 || q.input_size < 1 ||
        q.hidden_size < 1)
        throw py::value_error("rnn: invalid geometry");
    // oneDNN indexes with int32 in places: keep every tensor (the gates of the whole sequence
    // included) well below 2^31 elements; doubles, so that huge sizes cannot overflow
    const double lim = double(int64_t(1) << 30), t = q.steps, n = q.n, d = q.input_size,
                 h = q.hidden_size;
    if (t * n * 4 * h > lim || t * n * d > lim || 4 * h * std::max(d, h) > lim)
        throw py::value_error("rnn: sizes too large");
    return q;
}

memory::desc md_of(const dnnl::primitive_desc& pd, int arg) {
    return pd.query_md(dnnl::query::exec_arg_md, arg);
}

struct Rnn {
    RnnGeometry q;
    memory::desc x_md, y_md, s_md, wl_md, wi_md, b_md;  // user (numpy) layouts
    dnnl::primitive_desc fwd_pd, bwd_pd;
    dnnl::lstm_forward::primitive_desc lstm_pd;  // the typed forward pd (backward's hint)
    dnnl::gru_forward::primitive_desc gru_pd;
    dnnl::lbr_gru_forward::primitive_desc lbr_pd;
    dnnl::primitive fwd, bwd;
    size_t ws_bytes = 0;
    // forward ports
    Port f_x, f_wl, f_wi, f_y;
    // backward ports (built on first use)
    bool have_bwd = false;
    Port b_x, b_wl, b_wi, b_y, b_gy, b_gx, b_gwl, b_gwi;
    std::vector<float> gwl_tmp, gwi_tmp, gb_tmp, zeros_state;
    memory b_gb;

    explicit Rnn(const RnnGeometry& g) : q(g) {
        const int64_t G = q.gates();
        x_md = memory::desc({q.steps, q.n, q.input_size}, dt::f32, tag::ntc);
        y_md = memory::desc({q.steps, q.n, q.hidden_size}, dt::f32, tag::ntc);
        s_md = memory::desc({1, 1, q.n, q.hidden_size}, dt::f32, tag::ldnc);
        wl_md = memory::desc({1, 1, q.input_size, G, q.hidden_size}, dt::f32, tag::ldgoi);
        wi_md = memory::desc({1, 1, q.hidden_size, G, q.hidden_size}, dt::f32, tag::ldgoi);
        b_md = memory::desc({1, 1, q.bias_gates(), q.hidden_size}, dt::f32, tag::ldgo);
        // The sequence in the numpy layout when oneDNN takes it, else its own (tnc).
        try {
            build_fwd(x_md, y_md);
        } catch (const dnnl::error&) {
            build_fwd(memory::desc({q.steps, q.n, q.input_size}, dt::f32, tag::tnc),
                      memory::desc({q.steps, q.n, q.hidden_size}, dt::f32, tag::tnc));
        }
    }

    void build_fwd(const memory::desc& x, const memory::desc& y) {
        auto& e = engine();
        const int64_t G = q.gates();
        memory::desc wl_any({1, 1, q.input_size, G, q.hidden_size}, dt::f32, tag::any),
            wi_any({1, 1, q.hidden_size, G, q.hidden_size}, dt::f32, tag::any);
        auto pk = q.train ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
        auto dir = dnnl::rnn_direction::unidirectional_left2right;
        if (q.kind == 0) {
            auto pd = dnnl::lstm_forward::primitive_desc(e, pk, dir, x, s_md, s_md, wl_any,
                                                         wi_any, b_md, y, s_md, s_md,
                                                         scratch_attr());
            fwd = dnnl::lstm_forward(pd);
            fwd_pd = lstm_pd = pd;
        } else if (q.kind == 1) {
            auto pd = dnnl::gru_forward::primitive_desc(e, pk, dir, x, s_md, wl_any, wi_any,
                                                        b_md, y, s_md, scratch_attr());
            fwd = dnnl::gru_forward(pd);
            fwd_pd = gru_pd = pd;
        } else {
            auto pd = dnnl::lbr_gru_forward::primitive_desc(e, pk, dir, x, s_md, wl_any, wi_any,
                                                            b_md, y, s_md, scratch_attr());
            fwd = dnnl::lbr_gru_forward(pd);
            fwd_pd = lbr_pd = pd;
        }
        f_x.init(x_md, md_of(fwd_pd, DNNL_ARG_SRC_LAYER), true, false);
        f_wl.init(wl_md, md_of(fwd_pd, DNNL_ARG_WEIGHTS_LAYER), true, false);
        f_wi.init(wi_md, md_of(fwd_pd, DNNL_ARG_WEIGHTS_ITER), true, false);
        f_y.init(y_md, md_of(fwd_pd, DNNL_ARG_DST_LAYER), false, true);
        ws_bytes = q.train ? md_of(fwd_pd, DNNL_ARG_WORKSPACE).get_size() : 0;
    }

    void build_bwd() {
        auto& e = engine();
        const int64_t G = q.gates();
        memory::desc wl_any({1, 1, q.input_size, G, q.hidden_size}, dt::f32, tag::any),
            wi_any({1, 1, q.hidden_size, G, q.hidden_size}, dt::f32, tag::any);
        // activations in the forward's layout (the workspace was written for it)
        memory::desc x = md_of(fwd_pd, DNNL_ARG_SRC_LAYER), y = md_of(fwd_pd, DNNL_ARG_DST_LAYER);
        auto pk = dnnl::prop_kind::backward;
        auto dir = dnnl::rnn_direction::unidirectional_left2right;
        if (q.kind == 0) {
            auto pd = dnnl::lstm_backward::primitive_desc(
                e, pk, dir, x, s_md, s_md, wl_any, wi_any, b_md, y, s_md, s_md, x, s_md, s_md,
                wl_any, wi_any, b_md, y, s_md, s_md, lstm_pd, scratch_attr());
            bwd = dnnl::lstm_backward(pd);
            bwd_pd = pd;
        } else if (q.kind == 1) {
            auto pd = dnnl::gru_backward::primitive_desc(e, pk, dir, x, s_md, wl_any, wi_any,
                                                         b_md, y, s_md, x, s_md, wl_any, wi_any,
                                                         b_md, y, s_md, gru_pd, scratch_attr());
            bwd = dnnl::gru_backward(pd);
            bwd_pd = pd;
        } else {
            auto pd = dnnl::lbr_gru_backward::primitive_desc(
                e, pk, dir, x, s_md, wl_any, wi_any, b_md, y, s_md, x, s_md, wl_any, wi_any,
                b_md, y, s_md, lbr_pd, scratch_attr());
            bwd = dnnl::lbr_gru_backward(pd);
            bwd_pd = pd;
        }
        b_x.init(x_md, md_of(bwd_pd, DNNL_ARG_SRC_LAYER), true, false);
        b_y.init(y_md, md_of(bwd_pd, DNNL_ARG_DST_LAYER), true, false);
        b_gy.init(y_md, md_of(bwd_pd, DNNL_ARG_DIFF_DST_LAYER), true, false);
        b_gx.init(x_md, md_of(bwd_pd, DNNL_ARG_DIFF_SRC_LAYER), false, true);
        b_wl.init(wl_md, md_of(bwd_pd, DNNL_ARG_WEIGHTS_LAYER), true, false);
        b_wi.init(wi_md, md_of(bwd_pd, DNNL_ARG_WEIGHTS_ITER), true, false);
        b_gwl.init(wl_md, md_of(bwd_pd, DNNL_ARG_DIFF_WEIGHTS_LAYER), false, true);
        b_gwi.init(wi_md, md_of(bwd_pd, DNNL_ARG_DIFF_WEIGHTS_ITER), false, true);
        gwl_tmp.resize(G * q.hidden_size * q.input_size);
        gwi_tmp.resize(G * q.hidden_size * q.hidden_size);
        gb_tmp.resize(q.bias_gates() * q.hidden_size);
        zeros_state.assign(q.n * q.hidden_size, 0.f);
        b_gb = memory(b_md, e, gb_tmp.data());
        have_bwd = true;
    }
};

std::map<std::pair<RnnGeometry, int>, std::unique_ptr<Rnn>>& rnn_cache() {
    static std::map<std::pair<RnnGeometry, int>, std::unique_ptr<Rnn>> c;
    return c;
}

// Keyed by the geometry and the thread count: a primitive sizes its per-thread scratch for the
// threads it was created with, so it is not run with more.
Rnn& get_rnn(const RnnGeometry& geom) {
    const RnnGeometry& g = check_rnn(geom);
    const std::pair<RnnGeometry, int> key(g, omp_get_max_threads());
    auto& cache = rnn_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    if (cache.size() > 64) cache.clear();  // a model has a handful of shapes; bound the memory
    auto* p = new Rnn(g);
    cache[key].reset(p);
    return *p;
}

py::array as_array(const py::object& a, const std::string& what) {
    if (!py::isinstance<py::array>(a)) throw py::value_error(what + ": expected a numpy array");
    return a.cast<py::array>();
}

void* workspace_of(Rnn& r, py::object ws) {
    py::array a = as_array(ws, "rnn workspace");
    if (a.dtype().kind() != 'u' || a.itemsize() != 1 || a.ndim() != 1 ||
        !(a.flags() & py::array::c_style) || !a.writeable() ||
        (size_t)a.shape(0) != r.ws_bytes)
        throw py::value_error("rnn: workspace must be a writable uint8 array of " +
                              std::to_string(r.ws_bytes) + " bytes");
    return a.mutable_data();
}

float* opt_state(const Rnn& r, py::object a, const char* what, bool writable) {
    if (!r.q.lstm()) {
        if (!a.is_none()) throw py::value_error(std::string(what) + ": GRU has no cell state");
        return nullptr;
    }
    return data_of(as_array(a, what), what, {r.q.n, r.q.hidden_size}, writable);
}

// dst += src, vectorized (the arrays are distinct: the caller's gradient and the layer's own
// scratch) and split between the threads for long vectors; element-wise, so the same bits on
// any thread count.
void accumulate(float* __restrict dst, const float* __restrict src, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= 65536)
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

size_t rnn_workspace_size(const RnnGeometry& geom) {
    KernelLock guard;
    return get_rnn(geom).ws_bytes;
}

// x (N, T, D), h0 / c0 (N, H) -> y (N, T, H), hT / cT (N, H).  c0 / cT are None for GRUs;
// workspace is None for inference (the geometry's train false).
void rnn_forward(py::array x, py::array h0, py::object c0, py::array w_layer, py::array w_iter,
                 py::array bias, py::array y, py::array h_last, py::object c_last,
                 py::object workspace, const RnnGeometry& geom) {
    KernelLock guard;
    Rnn& r = get_rnn(geom);
    const RnnGeometry& q = r.q;
    const int64_t G = q.gates();
    float* px = data_of(x, "rnn input", {q.n, q.steps, q.input_size}, false);
    float* ph0 = data_of(h0, "rnn h0", {q.n, q.hidden_size}, false);
    float* pc0 = opt_state(r, c0, "rnn c0", false);
    float* pwl = data_of(w_layer, "rnn weight", {G * q.hidden_size, q.input_size}, false);
    float* pwi = data_of(w_iter, "rnn recurrent weight", {G * q.hidden_size, q.hidden_size}, false);
    float* pb = data_of(bias, "rnn bias", {q.bias_gates() * q.hidden_size}, false);
    float* py_ = data_of(y, "rnn output", {q.n, q.steps, q.hidden_size}, true);
    float* phT = data_of(h_last, "rnn last h", {q.n, q.hidden_size}, true);
    float* pcT = opt_state(r, c_last, "rnn last c", true);
    void* pws = nullptr;
    if (q.train) pws = workspace_of(r, workspace);
    else if (!workspace.is_none()) throw py::value_error("rnn: inference takes no workspace");
    py::gil_scoped_release nogil;
    auto& e = engine();
    dnnl::stream s(e);
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC_LAYER] = r.f_x.bind(px, s, true);
    args[DNNL_ARG_WEIGHTS_LAYER] = r.f_wl.bind(pwl, s, true);
    args[DNNL_ARG_WEIGHTS_ITER] = r.f_wi.bind(pwi, s, true);
    args[DNNL_ARG_SRC_ITER] = memory(r.s_md, e, ph0);
    args[DNNL_ARG_BIAS] = memory(r.b_md, e, pb);
    args[DNNL_ARG_DST_LAYER] = r.f_y.out(py_);
    args[DNNL_ARG_DST_ITER] = memory(r.s_md, e, phT);
    if (q.lstm()) {
        args[DNNL_ARG_SRC_ITER_C] = memory(r.s_md, e, pc0);
        args[DNNL_ARG_DST_ITER_C] = memory(r.s_md, e, pcT);
    }
    if (q.train) args[DNNL_ARG_WORKSPACE] = memory(md_of(r.fwd_pd, DNNL_ARG_WORKSPACE), e, pws);
    run(r.fwd, s, args);
    r.f_y.finish(s);
    s.wait();
}

// Backward over the sequence of the last training forward (same x, states, weights, y and
// workspace).  Writes gx (N, T, D), gh0 / gc0 (the initial states' gradients) and accumulates
// the weight gradients into gw_layer, gw_iter, gbias.  The final states get no gradient.
void rnn_backward(py::array x, py::array h0, py::object c0, py::array w_layer, py::array w_iter,
                  py::array bias, py::array y, py::array h_last, py::object c_last,
                  py::object workspace, py::array gy, py::array gx, py::array gh0,
                  py::object gc0, py::array gw_layer, py::array gw_iter, py::array gbias,
                  const RnnGeometry& geom) {
    KernelLock guard;
    Rnn& r = get_rnn(geom);
    const RnnGeometry& q = r.q;
    if (!q.train) throw py::value_error("rnn: backward needs a training geometry");
    const int64_t G = q.gates(), GB = q.bias_gates();
    float* px = data_of(x, "rnn input", {q.n, q.steps, q.input_size}, false);
    float* ph0 = data_of(h0, "rnn h0", {q.n, q.hidden_size}, false);
    float* pc0 = opt_state(r, c0, "rnn c0", false);
    float* pwl = data_of(w_layer, "rnn weight", {G * q.hidden_size, q.input_size}, false);
    float* pwi = data_of(w_iter, "rnn recurrent weight", {G * q.hidden_size, q.hidden_size}, false);
    float* pb = data_of(bias, "rnn bias", {GB * q.hidden_size}, false);
    float* py_ = data_of(y, "rnn output", {q.n, q.steps, q.hidden_size}, false);
    float* phT = data_of(h_last, "rnn last h", {q.n, q.hidden_size}, false);
    float* pcT = opt_state(r, c_last, "rnn last c", false);
    void* pws = workspace_of(r, workspace);
    float* pgy = data_of(gy, "rnn grad_output", {q.n, q.steps, q.hidden_size}, false);
    float* pgx = data_of(gx, "rnn grad_input", {q.n, q.steps, q.input_size}, true);
    float* pgh0 = data_of(gh0, "rnn grad h0", {q.n, q.hidden_size}, true);
    float* pgc0 = opt_state(r, gc0, "rnn grad c0", true);
    float* pgwl = data_of(gw_layer, "rnn grad_weight", {G * q.hidden_size, q.input_size}, true);
    float* pgwi = data_of(gw_iter, "rnn grad_recurrent_weight",
                          {G * q.hidden_size, q.hidden_size}, true);
    float* pgb = data_of(gbias, "rnn grad_bias", {GB * q.hidden_size}, true);
    py::gil_scoped_release nogil;
    if (!r.have_bwd) r.build_bwd();
    auto& e = engine();
    dnnl::stream s(e);
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC_LAYER] = r.b_x.bind(px, s, true);
    args[DNNL_ARG_DST_LAYER] = r.b_y.bind(py_, s, true);
    args[DNNL_ARG_DIFF_DST_LAYER] = r.b_gy.bind(pgy, s, true);
    args[DNNL_ARG_WEIGHTS_LAYER] = r.b_wl.bind(pwl, s, true);
    args[DNNL_ARG_WEIGHTS_ITER] = r.b_wi.bind(pwi, s, true);
    args[DNNL_ARG_SRC_ITER] = memory(r.s_md, e, ph0);
    args[DNNL_ARG_DST_ITER] = memory(r.s_md, e, phT);
    args[DNNL_ARG_BIAS] = memory(r.b_md, e, pb);
    args[DNNL_ARG_WORKSPACE] = memory(md_of(r.fwd_pd, DNNL_ARG_WORKSPACE), e, pws);
    float* zeros = r.zeros_state.data();
    args[DNNL_ARG_DIFF_DST_ITER] = memory(r.s_md, e, zeros);
    args[DNNL_ARG_DIFF_SRC_LAYER] = r.b_gx.out(pgx);
    args[DNNL_ARG_DIFF_SRC_ITER] = memory(r.s_md, e, pgh0);
    if (q.lstm()) {
        args[DNNL_ARG_SRC_ITER_C] = memory(r.s_md, e, pc0);
        args[DNNL_ARG_DST_ITER_C] = memory(r.s_md, e, pcT);
        args[DNNL_ARG_DIFF_DST_ITER_C] = memory(r.s_md, e, zeros);
        args[DNNL_ARG_DIFF_SRC_ITER_C] = memory(r.s_md, e, pgc0);
    }
    // oneDNN accumulates into the weight gradients: start them at zero in its layout
    for (Port* p : {&r.b_gwl, &r.b_gwi}) {
        p->out(p == &r.b_gwl ? r.gwl_tmp.data() : r.gwi_tmp.data());
        std::memset(p->prim.get_data_handle(), 0, p->prim.get_desc().get_size());
    }
    std::fill(r.gb_tmp.begin(), r.gb_tmp.end(), 0.f);
    args[DNNL_ARG_DIFF_WEIGHTS_LAYER] = r.b_gwl.prim;
    args[DNNL_ARG_DIFF_WEIGHTS_ITER] = r.b_gwi.prim;
    args[DNNL_ARG_DIFF_BIAS] = r.b_gb;
    run(r.bwd, s, args);
    r.b_gx.finish(s);
    r.b_gwl.finish(s);
    r.b_gwi.finish(s);
    s.wait();
    accumulate(pgwl, r.gwl_tmp.data(), (int64_t)r.gwl_tmp.size());
    accumulate(pgwi, r.gwi_tmp.data(), (int64_t)r.gwi_tmp.size());
    accumulate(pgb, r.gb_tmp.data(), (int64_t)r.gb_tmp.size());
}

}  // namespace

void register_rnn(py::module_& m) {
    m.def("rnn_workspace_size", &rnn_workspace_size, py::arg("geometry"),
          "Bytes of the training workspace for an RnnGeometry.");
    m.def("rnn_forward", &rnn_forward, py::arg("x"), py::arg("h0"), py::arg("c0"),
          py::arg("weight"), py::arg("recurrent_weight"), py::arg("bias"), py::arg("out"),
          py::arg("h_last"), py::arg("c_last"), py::arg("workspace"), py::arg("geometry"));
    m.def("rnn_backward", &rnn_backward, py::arg("x"), py::arg("h0"), py::arg("c0"),
          py::arg("weight"), py::arg("recurrent_weight"), py::arg("bias"), py::arg("out"),
          py::arg("h_last"), py::arg("c_last"), py::arg("workspace"), py::arg("grad_output"),
          py::arg("grad_input"), py::arg("grad_h0"), py::arg("grad_c0"),
          py::arg("grad_weight"), py::arg("grad_recurrent_weight"), py::arg("grad_bias"),
          py::arg("geometry"));
    static bool once = [] {
        cache_clearers().push_back([] { rnn_cache().clear(); });
        return true;
    }();
    (void)once;
}

}  // namespace wbn

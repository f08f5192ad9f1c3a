// The Python classes of the geometry structs (geometry.hpp): keyword constructor, one
// read-write attribute per field, ==, hash, repr and pickling, all from each struct's members().
#include "common.hpp"
#include "geometry.hpp"

#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace wbn {
namespace {

template <class G>
void bind_geometry(py::module_& m, const char* name, const char* doc) {
    py::class_<G> cls(m, name, doc);
    G::members([&](const char* field, auto p) { cls.def_readwrite(field, p); });
    // Keywords only, each a field; the fields not given keep their defaults (sizes 0, which no
    // kernel accepts; strides, dilations and groups 1; paddings 0; flags false).  A keyword that
    // is not a field is a TypeError, never silently ignored.  The layers build one per kernel
    // call, so this is on every call's path: one pass over the keywords, no string copies, and
    // each name looked for first where the previous one was found (the layers pass them in
    // field order: one comparison each).
    // (name, setter) of each field, once per struct (G is one type per instantiation)
    static std::vector<std::pair<const char*, std::function<void(G&, py::handle)>>> fields;
    if (fields.empty())
        G::members([&](const char* field, auto p) {
            fields.emplace_back(field, [p](G& g, py::handle v) {
                g.*p = v.template cast<std::decay_t<decltype(g.*p)>>();
            });
        });
    cls.def(py::init([name](py::kwargs kw) {
        G g;
        const size_t count = fields.size();
        size_t next = 0;
        for (auto item : kw) {
            const char* key = PyUnicode_AsUTF8(item.first.ptr());
            if (!key) throw py::error_already_set();
            size_t j = 0;
            for (; j < count; ++j) {
                const size_t i = (next + j) % count;
                if (std::strcmp(fields[i].first, key) == 0) {
                    fields[i].second(g, item.second);
                    next = i + 1;
                    break;
                }
            }
            if (j == count)
                throw py::type_error(std::string(name) + ": no field named '" + key + "'");
        }
        return g;
    }));
    cls.def("__eq__", [](const G& a, const G& b) { return a == b; }, py::is_operator());
    cls.def("__ne__", [](const G& a, const G& b) { return a != b; }, py::is_operator());
    cls.def("__hash__", [](const G& g) { return geometry_hash(g); });
    cls.def("__repr__", [name](const G& g) {
        std::string s = std::string(name) + "(";
        bool first = true;
        G::members([&](const char* field, auto p) {
            s += (first ? "" : ", ") + std::string(field) + "=" +
                 std::string(py::repr(py::cast(g.*p)));
            first = false;
        });
        return s + ")";
    });
    cls.def(py::pickle(
        [](const G& g) {
            py::dict d;
            G::members([&](const char* field, auto p) { d[field] = g.*p; });
            return d;
        },
        [](py::dict d) {
            G g;
            G::members([&](const char* field, auto p) {
                g.*p = d[field].template cast<std::decay_t<decltype(g.*p)>>();
            });
            return g;
        }));
}

}  // namespace

void register_geometry(py::module_& m) {
    bind_geometry<ConvGeometry>(
        m, "ConvGeometry",
        "The geometry of a convolution (conv_forward, conv_backward*, conv_impls), by keyword: "
        "n, c_in, h, w, c_out, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w "
        "(1: dense), pad_top, pad_bottom, pad_left, pad_right, groups, bias, relu, "
        "src_channels_last, dst_channels_last.");
    bind_geometry<PoolGeometry>(
        m, "PoolGeometry",
        "The geometry of a pooling (pool_forward, pool_backward, pool_workspace_size), by "
        "keyword: n, c, h, w, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_bottom, "
        "pad_left, pad_right, alg (0 max, 1 average with padding, 2 without), out_h, out_w, "
        "channels_last, train (False: inference, no workspace and no backward).");
    bind_geometry<BatchNormGeometry>(
        m, "BatchNormGeometry",
        "The geometry of a batch normalization (bn_forward, bn_backward), by keyword: n, c, l "
        "(x is (n, c, l), or (n, l, c) when channels_last), train, affine, relu, "
        "channels_last.");
    bind_geometry<LrnGeometry>(
        m, "LrnGeometry",
        "The geometry of a cross-map LRN (lrn_forward, lrn_backward, lrn_info, "
        "lrn_workspace_size), by keyword: n, c, h, w (NCHW), size (odd, >= 3).");
    bind_geometry<RnnGeometry>(
        m, "RnnGeometry",
        "The geometry of a one-layer LSTM / GRU over a sequence (rnn_forward, rnn_backward, "
        "rnn_workspace_size), by keyword: kind (0 LSTM, 1 GRU, 2 linear-before-reset GRU), "
        "steps, n, input_size, hidden_size, train.");
}

}  // namespace wbn

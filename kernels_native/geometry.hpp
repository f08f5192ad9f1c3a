// The layer geometries Python passes to the kernels, by name: workbench._native.ConvGeometry,
// PoolGeometry, BatchNormGeometry, LrnGeometry and RnnGeometry (bound in geometry.cpp), built with
// keywords by the layers (workbench/nn) and read by field name here.  They replace positional lists
// of ints, where one field added or moved on one side silently shifted every field after it on the
// other.
//
// Each struct lists its fields once, in members(): the Python binding (one read-write attribute
// per field, the keyword constructor, repr, pickling), equality, ordering and hash all read that
// list.  A field missing from members() would be invisible to Python and, worse, left out of the
// primitive caches' key: two layers differing only in it would share one cached primitive, built
// for the other's shape, and run it out of bounds.  So every field is in members(), and a struct
// holds only what defines the primitive (no derived sizes: those are methods).
//
// The structs are plain values with no checks of their own: every entry point checks the
// geometry it is given (check_*() in the kernel's source file) before it touches memory, and a
// bad one raises ValueError.
#pragma once
#include <cstdint>
#include <functional>

namespace wbn {

// Convolution (forward and both backwards).  Activations (N, C, H, W), or (N, H, W, C) when
// channels-last: src_channels_last for the input (and grad_input), dst_channels_last for the
// output (forward) or grad_output (backward).  dilation 1 is a dense kernel (BigDL's convention,
// oneDNN's dilation is this minus 1).  relu: the forward's output goes through max(0, .).
struct ConvGeometry {
    int64_t n = 0, c_in = 0, h = 0, w = 0, c_out = 0, kernel_h = 0, kernel_w = 0;
    int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
    int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0, groups = 1;
    bool bias = false, relu = false, src_channels_last = false, dst_channels_last = false;

    int64_t out_h() const {
        return (h + pad_top + pad_bottom - ((kernel_h - 1) * dilation_h + 1)) / stride_h + 1;
    }
    int64_t out_w() const {
        return (w + pad_left + pad_right - ((kernel_w - 1) * dilation_w + 1)) / stride_w + 1;
    }

    template <class F>
    static void members(F&& f) {
        using G = ConvGeometry;
        f("n", &G::n); f("c_in", &G::c_in); f("h", &G::h); f("w", &G::w);
        f("c_out", &G::c_out); f("kernel_h", &G::kernel_h); f("kernel_w", &G::kernel_w);
        f("stride_h", &G::stride_h); f("stride_w", &G::stride_w);
        f("dilation_h", &G::dilation_h); f("dilation_w", &G::dilation_w);
        f("pad_top", &G::pad_top); f("pad_bottom", &G::pad_bottom);
        f("pad_left", &G::pad_left); f("pad_right", &G::pad_right); f("groups", &G::groups);
        f("bias", &G::bias); f("relu", &G::relu);
        f("src_channels_last", &G::src_channels_last);
        f("dst_channels_last", &G::dst_channels_last);
    }
};

// Pooling.  The output size is given (Python decides ceil mode, SAME ...), and the bottom / right
// padding must make oneDNN produce exactly that size.  alg: 0 max, 1 average counting the
// padding, 2 average without it.  channels_last: input, output and their gradients.  train:
// false for inference (forward_inference: max pooling keeps no argmax workspace, and there is no
// backward).
struct PoolGeometry {
    int64_t n = 0, c = 0, h = 0, w = 0, kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1;
    int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0, alg = 0;
    int64_t out_h = 0, out_w = 0;
    bool channels_last = false, train = true;

    template <class F>
    static void members(F&& f) {
        using G = PoolGeometry;
        f("n", &G::n); f("c", &G::c); f("h", &G::h); f("w", &G::w);
        f("kernel_h", &G::kernel_h); f("kernel_w", &G::kernel_w);
        f("stride_h", &G::stride_h); f("stride_w", &G::stride_w);
        f("pad_top", &G::pad_top); f("pad_bottom", &G::pad_bottom);
        f("pad_left", &G::pad_left); f("pad_right", &G::pad_right); f("alg", &G::alg);
        f("out_h", &G::out_h); f("out_w", &G::out_w); f("channels_last", &G::channels_last);
        f("train", &G::train);
    }
};

// Batch normalization over x of shape (n, c, l), or (n, l, c) when channels_last.  train: batch
// statistics (else the running ones); affine: a weight and bias; relu: fused max(0, .).
struct BatchNormGeometry {
    int64_t n = 0, c = 0, l = 0;
    bool train = false, affine = false, relu = false, channels_last = false;

    template <class F>
    static void members(F&& f) {
        using G = BatchNormGeometry;
        f("n", &G::n); f("c", &G::c); f("l", &G::l); f("train", &G::train);
        f("affine", &G::affine); f("relu", &G::relu); f("channels_last", &G::channels_last);
    }
};

// Cross-map LRN over NCHW x (n, c, h, w); size: the window across channels (odd, >= 3).  Its
// alpha, beta and k are arguments of the entry points, not fields (the cache keys them too).
struct LrnGeometry {
    int64_t n = 0, c = 0, h = 0, w = 0, size = 0;

    template <class F>
    static void members(F&& f) {
        using G = LrnGeometry;
        f("n", &G::n); f("c", &G::c); f("h", &G::h); f("w", &G::w); f("size", &G::size);
    }
};

// A one-layer LSTM / GRU over a whole sequence: x (n, steps, input_size), outputs (n, steps,
// hidden_size).  kind: 0 LSTM, 1 GRU, 2 GRU with the reset gate after the linear map
// (linear-before-reset).  train: forward keeps the workspace backward needs.
struct RnnGeometry {
    int64_t kind = 0, steps = 0, n = 0, input_size = 0, hidden_size = 0;
    bool train = false;

    int64_t gates() const { return kind == 0 ? 4 : 3; }
    int64_t bias_gates() const { return kind == 2 ? 4 : gates(); }
    bool lstm() const { return kind == 0; }

    template <class F>
    static void members(F&& f) {
        using G = RnnGeometry;
        f("kind", &G::kind); f("steps", &G::steps); f("n", &G::n);
        f("input_size", &G::input_size); f("hidden_size", &G::hidden_size);
        f("train", &G::train);
    }
};

// Equality, ordering (the std::map caches) and hash, field by field in members() order.
template <class G>
bool geometry_equal(const G& a, const G& b) {
    bool eq = true;
    G::members([&](const char*, auto p) { eq = eq && a.*p == b.*p; });
    return eq;
}

template <class G>
bool geometry_less(const G& a, const G& b) {
    int order = 0;  // -1: a < b, 1: a > b, 0: equal so far
    G::members([&](const char*, auto p) {
        if (order == 0 && a.*p != b.*p) order = a.*p < b.*p ? -1 : 1;
    });
    return order < 0;
}

template <class G>
size_t geometry_hash(const G& g) {
    size_t h = 0;
    G::members([&](const char*, auto p) {
        const size_t v = std::hash<int64_t>()((int64_t)(g.*p));
        h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    });
    return h;
}

#define WBN_GEOMETRY_OPERATORS(G)                                                            \
    inline bool operator==(const G& a, const G& b) { return geometry_equal(a, b); }           \
    inline bool operator!=(const G& a, const G& b) { return !geometry_equal(a, b); }          \
    inline bool operator<(const G& a, const G& b) { return geometry_less(a, b); }

WBN_GEOMETRY_OPERATORS(ConvGeometry)
WBN_GEOMETRY_OPERATORS(PoolGeometry)
WBN_GEOMETRY_OPERATORS(BatchNormGeometry)
WBN_GEOMETRY_OPERATORS(LrnGeometry)
WBN_GEOMETRY_OPERATORS(RnnGeometry)
#undef WBN_GEOMETRY_OPERATORS

}  // namespace wbn

namespace std {
template <>
struct hash<wbn::ConvGeometry> {
    size_t operator()(const wbn::ConvGeometry& g) const { return wbn::geometry_hash(g); }
};
template <>
struct hash<wbn::PoolGeometry> {
    size_t operator()(const wbn::PoolGeometry& g) const { return wbn::geometry_hash(g); }
};
template <>
struct hash<wbn::BatchNormGeometry> {
    size_t operator()(const wbn::BatchNormGeometry& g) const { return wbn::geometry_hash(g); }
};
template <>
struct hash<wbn::LrnGeometry> {
    size_t operator()(const wbn::LrnGeometry& g) const { return wbn::geometry_hash(g); }
};
template <>
struct hash<wbn::RnnGeometry> {
    size_t operator()(const wbn::RnnGeometry& g) const { return wbn::geometry_hash(g); }
};
}  // namespace std

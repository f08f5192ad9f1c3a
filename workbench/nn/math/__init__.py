"""Element-wise arithmetic and maths layers: ``Abs``, ``Exp``, ``Log``, ``Power``, ``Sqrt``,
``Square``, ``Negative``, constants (``AddConstant``, ``MulConstant``) and learned
element-wise parameters (``Add``, ``CAdd``, ``CMul``, ``Mul``, ``Scale``).
"""
from .elementwise import (Abs, Exp, Log, Sqrt, Square, Power, Negative, AddConstant, MulConstant,
                          Add, CAdd, Mul, CMul, Scale)

__all__ = ["Abs", "Exp", "Log", "Sqrt", "Square", "Power", "Negative", "AddConstant", "MulConstant",
           "Add", "CAdd", "Mul", "CMul", "Scale"]

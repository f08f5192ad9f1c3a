"""Names shared by the zoo and the weight importers: which of our layers and parameters hold
each entry of a PyTorch (torchvision) ``state_dict``.

The map format (read by ``workbench.io.pytorch``)::

    {torch state_dict key: (our layer name, our parameter or buffer name)}

    "layer1.0.conv1.weight"      -> ("layer1.0.conv1", "weight")
    "layer1.0.bn1.running_mean"  -> ("layer1.0.bn1", "running_mean")
    "fc.bias"                    -> ("fc", "bias")

The layer name is the one given with ``set_name`` (``Module.name()``); the second element is the
attribute of that layer: ``"weight"`` / ``"bias"`` for parameters, ``"running_mean"`` /
``"running_var"`` for batch normalization's buffers.  Arrays have the same shapes on both sides
(convolution weights ``(out, in / groups, kh, kw)``, linear weights ``(out, in)``), so a copy
needs no transposition.  PyTorch's ``num_batches_tracked`` has no counterpart and is not in the
map: an importer skips it.

The zoo's torchvision-layout builders (``VGG16``, ``VGG19``, ``ResNet18``, ``ResNet50``,
``GoogLeNet``) name every layer after its torchvision module path, so for them the map is the
identity on the key structure and covers every key of the torchvision ``state_dict`` except
``num_batches_tracked`` (and GoogLeNet's ``aux1`` / ``aux2``, which the zoo leaves out).
"""
from __future__ import annotations

__all__ = ["torchvision_names", "TORCH_SKIPPED_SUFFIXES"]

# state_dict entries of PyTorch that have no counterpart here
TORCH_SKIPPED_SUFFIXES = ("num_batches_tracked",)


def torchvision_names(model) -> dict[str, tuple[str, str]]:
    """The map ``{torch state_dict key: (layer name, parameter name)}`` of ``model``.

    Every parameter and buffer of every layer gives the key ``f"{layer name}.{attribute}"``;
    for a zoo model built after a torchvision one these are exactly torchvision's keys.

    Args:
        model: a ``workbench.nn`` module whose layers with parameters were named with
            ``set_name`` (all the zoo's models are).

    Returns:
        ``dict[str, tuple[str, str]]``: the parameters in model order, then the buffers.

    Raises:
        ValueError: a layer with parameters has no name of its own (naming the layer), or two
            such layers share a name.
    """
    names, owner = {}, {}
    entries = [(m, a) for _, m, a in model.named_parameters()]
    entries += [(m, a) for _, m, a in model.named_buffers()]
    for layer, attr in entries:
        name = layer.name()
        if not _named(layer):
            raise ValueError(f"torchvision_names: layer {name} ({type(layer).__name__}) has "
                             "parameters but no name; set_name it after the torch module path")
        if owner.setdefault(name, layer) is not layer:
            raise ValueError(f"torchvision_names: two layers are named {name!r}")
        names[f"{name}.{attr}"] = (name, attr)
    return names


def _named(layer):
    """Whether ``set_name`` named the layer (``label()`` shows only such names)."""
    return layer.label() != type(layer).__name__

"""Rewrites of an exported ONNX graph that keep what it computes and make ONNX Runtime run it faster.

`convolutions_as_2d`: every 1-D convolution becomes a 2-D one over (B, C, 1, T). ONNX Runtime's CPU
provider runs a 1-D convolution as an im2col copy and a matrix product, and a 2-D one through its
blocked-layout (NCHWc) kernels, which read the input in place and fuse a following activation
(measured on the shipped voice's acoustic graph, one thread, 40 held-out sentences: 12 % less time;
its decoder's 128 -> 512, kernel-9 convolutions are a third of that graph). The graph stays standard
ONNX (Unsqueeze, Conv, Squeeze), so any runtime still runs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Elementwise operations that give the same values on (B, C, 1, T) as on (B, C, T) when every
# input gained the same axis (broadcasting between inputs of one rank is unchanged).
_ELEMENTWISE = frozenset({"Relu", "LeakyRelu", "Tanh", "Sigmoid", "Add", "Sub", "Mul"})
_AXES = "ttskit_conv2d_axes"  # the one initializer every inserted Unsqueeze and Squeeze reads (axis 2)


def convolutions_as_2d(model: Any) -> int:
    """Rewrite `model` (an `onnx.ModelProto`, in place) and return how many convolutions changed.
    A convolution qualifies when its weight is a 3-D constant read by convolutions alone; it then
    reads an Unsqueeze of its input, and a Squeeze gives back its output. Elementwise work on
    convolution outputs alone (an activation, a residual sum of two) moves before the Squeezes, and
    a Squeeze met by an Unsqueeze (one convolution into the next) cancels, so a stack of
    convolutions stays four-dimensional from end to end."""
    from onnx import helper, numpy_helper

    graph = model.graph
    if any(attribute.type in (attribute.GRAPH, attribute.GRAPHS) for node in graph.node for attribute in node.attribute):
        return 0  # a graph with subgraphs (If, Loop) keeps its form: its names cross scopes
    # Weights are initializers, or Constant nodes where the exporter kept a computed kernel.
    weights = {initializer.name: initializer for initializer in graph.initializer}
    weights |= {node.output[0]: attribute.t for node in graph.node if node.op_type == "Constant"
                for attribute in node.attribute if attribute.name == "value"}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    convertible = [node for node in graph.node if _is_1d_convolution(node, weights, readers)]
    if not convertible:
        return 0
    graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), _AXES))
    for name in {node.input[1] for node in convertible}:
        weight = numpy_helper.to_array(weights[name])
        weights[name].CopyFrom(numpy_helper.from_array(weight[:, :, None, :], name))
    inserted_squeezes: set[str] = set()
    rewritten = []
    for node in graph.node:
        if node not in convertible:
            rewritten.append(node)
            continue
        planar_in, planar_out = f"{node.output[0]}/planar_in", f"{node.output[0]}/planar"
        rewritten.append(helper.make_node("Unsqueeze", [node.input[0], _AXES], [planar_in],
                                          name=f"{node.name}/unsqueeze"))
        rewritten.append(helper.make_node("Conv", [planar_in, *node.input[1:]], [planar_out], name=node.name,
                                          **_planar_attributes(node)))
        rewritten.append(_squeeze(planar_out, node.output[0], f"{node.name}/squeeze"))
        inserted_squeezes.add(f"{node.name}/squeeze")
    del graph.node[:]
    graph.node.extend(rewritten)
    _elementwise_before_squeezes(graph, inserted_squeezes)
    _cancel_squeeze_unsqueeze(graph, inserted_squeezes)
    return len(convertible)


def _is_1d_convolution(node: Any, weights: dict[str, Any], readers: dict[str, list[Any]]) -> bool:
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in weights:
        return False
    if len(weights[node.input[1]].dims) != 3:
        return False
    if any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for a in node.attribute):
        return False
    return all(reader.op_type == "Conv" for reader in readers[node.input[1]])


def _planar_attributes(node: Any) -> dict[str, Any]:
    """The 1-D convolution's attributes for the 2-D one over (B, C, 1, T)."""
    from onnx import helper

    out: dict[str, Any] = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if attribute.name in ("kernel_shape", "dilations", "strides"):
            out[attribute.name] = [1, *value]
        elif attribute.name == "pads":  # [begin, end] -> [height begin, begin, height end, end]
            out["pads"] = [0, value[0], 0, value[1]]
        elif attribute.name != "auto_pad":
            out[attribute.name] = value
    return out


def _elementwise_before_squeezes(graph: Any, squeezes: set[str]) -> None:
    """An elementwise node whose every input is an inserted Squeeze's output runs on the Squeezes'
    4-D inputs instead, and a new inserted Squeeze gives its old output. In node order, so a chain
    (activation, residual Add, activation, ...) moves whole. The new pair sits where the node was:
    the order stays topological, since the Squeezes' inputs came before their outputs."""
    producer: dict[str, Any] = {}
    nodes = []
    for node in graph.node:
        sources = [producer.get(name) for name in node.input]
        if (node.op_type in _ELEMENTWISE and len(node.output) == 1 and sources
                and all(source is not None and source.name in squeezes for source in sources)):
            planar = f"{node.output[0]}/planar"
            moved = _with_io(node, [source.input[0] for source in sources], [planar])
            squeeze = _squeeze(planar, node.output[0], f"{node.name or node.output[0]}/squeeze")
            squeezes.add(squeeze.name)
            nodes += [moved, squeeze]
        else:
            nodes.append(node)
        for output in nodes[-1].output:
            producer[output] = nodes[-1]
    del graph.node[:]
    graph.node.extend(nodes)


def _squeeze(planar: str, output: str, name: str) -> Any:
    from onnx import helper

    return helper.make_node("Squeeze", [planar, _AXES], [output], name=name)


def _with_io(node: Any, inputs: list[str], outputs: list[str]) -> Any:
    """A copy of `node` (its type and attributes) reading `inputs` and writing `outputs`."""
    from onnx import NodeProto

    copy = NodeProto()
    copy.CopyFrom(node)
    del copy.input[:], copy.output[:]
    copy.input.extend(inputs)
    copy.output.extend(outputs)
    return copy


def _cancel_squeeze_unsqueeze(graph: Any, squeezes: set[str]) -> None:
    """An inserted Unsqueeze that reads an inserted Squeeze is dropped: its readers take the
    Squeeze's 4-D input. A Squeeze no node reads any more is dropped too."""
    producer = {output: node for node in graph.node for output in node.output}
    replaced: dict[str, str] = {}
    kept = []
    for node in graph.node:
        source = producer.get(node.input[0]) if node.input else None
        if (node.op_type == "Unsqueeze" and node.input[1:] == [_AXES] and source is not None
                and source.name in squeezes and not _is_graph_output(graph, node.output[0])):
            replaced[node.output[0]] = source.input[0]
            continue
        kept.append(node)
    for node in kept:
        for position, name in enumerate(node.input):
            if name in replaced:
                node.input[position] = replaced[name]
    read = {name for node in kept for name in node.input}
    kept = [node for node in kept if not (node.name in squeezes and node.output[0] not in read
                                          and not _is_graph_output(graph, node.output[0]))]
    del graph.node[:]
    graph.node.extend(kept)


def _is_graph_output(graph: Any, name: str) -> bool:
    return any(output.name == name for output in graph.output)

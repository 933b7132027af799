import Foundation

/// A node cut out of its model into a standalone one-node ONNX model, in canonical form:
/// tensors renamed by position (graph inputs "in<k>", constants "const<k>", outputs "out<k>")
/// and symbolic dims renamed by first appearance ("s0", "s1", ...), so that identical nodes
/// (same op, attributes, dtypes, shapes up to symbol names, constant inputs) give identical bytes.
public struct ExtractedNode: Sendable {
    /// The node's name in the source model.
    public var sourceName: String
    public var opType: String
    public var model: ONNXModel
    /// Per node input: the source tensor name ("" for an omitted optional input).
    public var sourceInputs: [String]
    public var sourceOutputs: [String]
    /// Canonical symbol -> the symbol's name in the source model.
    public var symbols: [String: String]
    /// Source tensors of the canonical graph inputs in0, in1, ... (the plugin's inputs).
    public var graphInputSources: [String]
    /// Source tensors of the canonical graph outputs (the node's non-empty outputs).
    public var graphOutputSources: [String]
    /// Tensors whose type was changed for TensorRT (float64 computed as float32).
    public var demoted: [String]

    /// The canonical serialized model: the identity of the node for caching and plugin sharing.
    public var canonicalBytes: Data { (try? model.serializedInline()) ?? Data() }
}

public enum NodeExtractor {
    /// Cuts node `name` out of `model`, typing its inputs and outputs from `tensors`
    /// (shape inference). Constant inputs (initializers, Constant nodes) stay constants.
    public static func extract(
        node name: String, from model: ONNXModel,
        tensors: [String: TensorInfo], demoteFloat64: Bool = false
    ) throws(TPATError) -> ExtractedNode {
        let index = GraphIndex(model.graph)
        guard let i = model.graph.node.indices.first(where: { index.nodeName($0) == name }) else {
            let names = model.graph.node.indices.prefix(8).map(index.nodeName).joined(separator: ", ")
            throw TPATError(.input, "no node named '\(name)' in the model (nodes: \(names)\(model.graph.node.count > 8 ? ", ..." : ""))")
        }
        return try extract(nodeAt: i, index: index, model: model, tensors: tensors, demoteFloat64: demoteFloat64)
    }

    /// With `demoteFloat64`, float64 inputs and outputs become float32 (TensorRT has no float64
    /// tensors; the rewritten model casts around the plugin).
    public static func extract(
        nodeAt i: Int, index: GraphIndex, model: ONNXModel,
        tensors: [String: TensorInfo], demoteFloat64: Bool = false
    ) throws(TPATError) -> ExtractedNode {
        let source = index.graph.node[i]
        let nodeName = index.nodeName(i)
        var symbols: [String: String] = [:]  // source -> canonical
        var canonicalToSource: [String: String] = [:]
        func canonical(_ shape: [Dimension]) -> [Dimension] {
            shape.map { d in
                guard case .symbol(let s) = d else { return d }
                if let c = symbols[s] { return .symbol(c) }
                let c = "s\(symbols.count)"
                symbols[s] = c
                canonicalToSource[c] = s
                return .symbol(c)
            }
        }
        func info(_ t: String) -> TensorInfo? { tensors[t] ?? index.declared[t] ?? index.initializers[t].map(TensorInfo.init) }

        var graph = Onnx_GraphProto()
        graph.name = "tpat_\(source.opType)"
        var node = Onnx_NodeProto()
        node.opType = source.opType
        node.domain = source.domain
        node.name = "node"
        node.attribute = source.attribute
        var renamed: [String: String] = [:]
        var inputCount = 0, constCount = 0
        var inputSources: [String] = [], outputSources: [String] = [], demoted: [String] = []
        func bridged(_ t: String, _ type: ONNXDataType) -> ONNXDataType {
            guard demoteFloat64, type == .double else { return type }
            demoted.append(t)
            return .float
        }
        for t in source.input {
            if t.isEmpty { node.input.append(""); continue }
            if let r = renamed[t] { node.input.append(r); continue }
            if var c = index.constant(t) {
                if let problem = TensorValues.payloadProblem(c) {
                    throw TPATError(.plan, "node '\(nodeName)': constant input '\(t)' is malformed (\(problem))")
                }
                let r = "const\(constCount)"; constCount += 1
                c.name = r
                c.docString = ""
                graph.initializer.append(c)
                renamed[t] = r
                node.input.append(r)
                continue
            }
            guard let ti = info(t), ti.dataType != .undefined else {
                throw TPATError(.plan, "node '\(nodeName)': the type of input '\(t)' is unknown (shape inference could not type it)")
            }
            guard let shape = ti.shape else {
                throw TPATError(.plan, "node '\(nodeName)': the rank of input '\(t)' is unknown")
            }
            let r = "in\(inputCount)"; inputCount += 1
            graph.input.append(valueInfo(r, bridged(t, ti.dataType), canonical(shape)))
            inputSources.append(t)
            renamed[t] = r
            node.input.append(r)
        }
        for (k, t) in source.output.enumerated() {
            if t.isEmpty { node.output.append(""); continue }
            let r = "out\(k)"
            node.output.append(r)
            guard let ti = info(t), ti.dataType != .undefined else {
                throw TPATError(.plan, "node '\(nodeName)': the type of output '\(t)' is unknown")
            }
            graph.output.append(valueInfo(r, bridged(t, ti.dataType), ti.shape.map(canonical)))
            outputSources.append(t)
        }
        if !demoted.isEmpty { demoteDoubles(&node, &graph) }
        graph.node = [node]
        var proto = Onnx_ModelProto()
        proto.irVersion = model.proto.irVersion
        proto.opsetImport = model.proto.opsetImport.sorted { $0.domain < $1.domain }
        proto.producerName = "tpat"
        proto.graph = graph
        return ExtractedNode(
            sourceName: nodeName, opType: source.opType, model: ONNXModel(proto: proto),
            sourceInputs: Array(source.input), sourceOutputs: Array(source.output),
            symbols: canonicalToSource, graphInputSources: inputSources,
            graphOutputSources: outputSources, demoted: demoted)
    }

    /// The node computes in float32 once its float64 tensors are demoted: a type attribute
    /// naming float64 (Cast `to`, `dtype`, `output_dtype`) names float32, and float64 constants
    /// become float32, so the one-node model stays well-typed (ONNX Runtime runs it for the
    /// reference data).
    static func demoteDoubles(_ node: inout Onnx_NodeProto, _ graph: inout Onnx_GraphProto) {
        let double = ONNXDataType.double.rawValue, float = ONNXDataType.float.rawValue
        for k in node.attribute.indices
        where ["to", "dtype", "output_dtype"].contains(node.attribute[k].name)
            && node.attribute[k].type == .int && node.attribute[k].i == Int64(double)
        {
            node.attribute[k].i = Int64(float)
        }
        for k in graph.initializer.indices where graph.initializer[k].dataType == double {
            guard let values = TensorValues.doubles(graph.initializer[k]) else { continue }
            var t = graph.initializer[k]
            t.doubleData = []
            t.dataType = float
            var raw = Data(capacity: values.count * 4)
            for v in values { withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
            t.rawData = raw
            graph.initializer[k] = t
        }
    }

    static func valueInfo(_ name: String, _ type: ONNXDataType, _ shape: [Dimension]?) -> Onnx_ValueInfoProto {
        var tt = Onnx_TypeProto.Tensor()
        tt.elemType = type.rawValue
        if let shape {
            var s = Onnx_TensorShapeProto()
            s.dim = shape.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                switch d {
                case .fixed(let v): dim.dimValue = v
                case .symbol(let p): dim.dimParam = p
                case .unknown: break
                }
                return dim
            }
            tt.shape = s
        }
        var t = Onnx_TypeProto()
        t.tensorType = tt
        var vi = Onnx_ValueInfoProto()
        vi.name = name
        vi.type = t
        return vi
    }
}

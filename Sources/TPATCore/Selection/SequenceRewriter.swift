import Foundation

/// Rewrites SplitToSequence read only by SequenceAt at constant positions into a Split (plus a
/// Squeeze per part for `keepdims=0`, an Identity per repeated read): tensors only, which
/// TensorRT imports. Other sequence uses are left alone (PluginBlockers reports them).
public enum SequenceRewriter {
    public struct Rewrite: Sendable, Equatable {
        /// The SplitToSequence node's name.
        public var node: String
        /// The SequenceAt nodes it absorbs.
        public var reads: [String]
        public var parts: Int
    }

    /// The rewrites possible in this model (`tensors`: inferred types, for the split axis' size).
    public static func plan(_ model: ONNXModel, tensors: [String: TensorInfo]) -> [Rewrite] {
        analyse(model, tensors: tensors).map(\.rewrite)
    }

    struct Found { var rewrite: Rewrite; var index: Int; var sizes: [Int64]?; var squeeze: Bool; var readers: [(Int, Int64)] }

    static func analyse(_ model: ONNXModel, tensors: [String: TensorInfo]) -> [Found] {
        let index = GraphIndex(model.graph)
        var found: [Found] = []
        for (i, node) in model.graph.node.enumerated() where node.isDefaultDomain && node.opType == "SplitToSequence" {
            guard let seq = node.output.first, !seq.isEmpty, !index.graphOutputs.contains(seq),
                let readers = index.consumers[seq], !readers.isEmpty
            else { continue }
            let axis = node.attribute("axis")?.i ?? 0
            let keepdims = node.attribute("keepdims").map { $0.i != 0 } ?? true
            let input = tensors[node.input[0]] ?? index.declared[node.input[0]]
            guard let rank = input?.rank else { continue }
            let a = Int(axis < 0 ? axis + Int64(rank) : axis)
            guard (0..<rank).contains(a) else { continue }
            let dim: Int64? = { if case .fixed(let d)? = input?.shape?[a] { return d } else { return nil } }()
            // Part sizes: the constant `split` input (a list, or one chunk size), else ones.
            var sizes: [Int64]?
            var squeeze = false
            if node.input.count > 1, !node.input[1].isEmpty {
                guard let t = index.constant(node.input[1]), let v = TensorValues.integers(t), !v.isEmpty else { continue }
                if t.dims.isEmpty {
                    guard let d = dim, v[0] > 0 else { continue }
                    sizes = stride(from: Int64(0), to: d, by: Int(v[0])).map { min(v[0], d - $0) }
                } else {
                    sizes = v
                }
            } else {
                guard let d = dim, d > 0 else { continue }
                sizes = Array(repeating: 1, count: Int(d))
                squeeze = !keepdims
            }
            guard let parts = sizes?.count, parts > 0 else { continue }
            // Every reader: SequenceAt at a constant, in-range position.
            var reads: [(Int, Int64)] = []
            for r in readers {
                let n = model.graph.node[r]
                guard n.isDefaultDomain, n.opType == "SequenceAt", n.input.count == 2, n.input[0] == seq,
                    let t = index.constant(n.input[1]), let p = TensorValues.integers(t)?.first
                else { reads = []; break }
                let pos = p < 0 ? p + Int64(parts) : p
                guard (0..<Int64(parts)).contains(pos) else { reads = []; break }
                reads.append((r, pos))
            }
            guard reads.count == readers.count else { continue }
            found.append(
                .init(
                    rewrite: .init(node: index.nodeName(i), reads: reads.map { index.nodeName($0.0) }, parts: parts),
                    index: i, sizes: sizes, squeeze: squeeze, readers: reads))
        }
        return found
    }

    /// The rewritten model and one note per rewrite.
    public static func rewrite(_ model: ONNXModel, tensors: [String: TensorInfo]) -> (ONNXModel, [String]) {
        let found = analyse(model, tensors: tensors)
        guard !found.isEmpty else { return (model, []) }
        let opset = model.opsetVersion(domain: "") ?? 13
        var out = model
        var replace: [Int: [Onnx_NodeProto]] = [:]
        var drop = Set<Int>()
        var initializers: [Onnx_TensorProto] = []
        var notes: [String] = []
        for f in found {
            let split = model.graph.node[f.index]
            let base = f.rewrite.node
            var outputs = (0..<f.rewrite.parts).map { "\(base)__tpat_part\($0)" }
            var extra: [Onnx_NodeProto] = []
            var firstReader: [Int64: String] = [:]
            for (r, pos) in f.readers {
                let target = model.graph.node[r].output[0]
                drop.insert(r)
                if f.squeeze {
                    extra.append(
                        squeezeNode(
                            outputs[Int(pos)], target, axis: split.attribute("axis")?.i ?? 0, opset: opset,
                            name: "\(base)__tpat_squeeze_\(target)", initializers: &initializers))
                } else if let first = firstReader[pos] {
                    extra.append(node("Identity", [first], [target], name: "\(base)__tpat_identity_\(target)"))
                } else {
                    firstReader[pos] = target
                    outputs[Int(pos)] = target
                }
            }
            var s = node("Split", [split.input[0]], outputs, name: split.name.isEmpty ? base : split.name)
            var axisAttr = Onnx_AttributeProto(); axisAttr.name = "axis"; axisAttr.type = .int; axisAttr.i = split.attribute("axis")?.i ?? 0
            s.attribute = [axisAttr]
            if let sizes = f.sizes {
                if opset >= 13 {
                    var t = Onnx_TensorProto(); t.name = "\(base)__tpat_split_sizes"; t.dataType = Int32(ONNXDataType.int64.rawValue)
                    t.dims = [Int64(sizes.count)]; t.int64Data = sizes
                    initializers.append(t)
                    s.input.append(t.name)
                } else {
                    var a = Onnx_AttributeProto(); a.name = "split"; a.type = .ints; a.ints = sizes
                    s.attribute.append(a)
                }
            }
            replace[f.index] = [s] + extra
            notes.append(
                "\(base): SplitToSequence read by \(f.readers.count) SequenceAt at constant positions rewritten as a Split into \(f.rewrite.parts) parts"
            )
        }
        var nodes: [Onnx_NodeProto] = []
        for (i, n) in model.graph.node.enumerated() where !drop.contains(i) {
            nodes += replace[i] ?? [n]
        }
        out.proto.graph.node = nodes
        // Initializers only the removed nodes read (positions, split sizes) go too.
        let used = Set(nodes.flatMap(\.input))
        let removedInputs = Set(
            found.flatMap { f in [model.graph.node[f.index]] + f.readers.map { model.graph.node[$0.0] } }.flatMap(\.input))
        out.proto.graph.initializer.removeAll { removedInputs.contains($0.name) && !used.contains($0.name) }
        out.proto.graph.initializer += initializers
        // The sequence values are gone; so are their value_info entries.
        let gone = Set(found.map { model.graph.node[$0.index].output[0] })
        out.proto.graph.valueInfo.removeAll { gone.contains($0.name) }
        return (out, notes)
    }

    static func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String) -> Onnx_NodeProto {
        var n = Onnx_NodeProto(); n.opType = op; n.input = inputs; n.output = outputs; n.name = name; return n
    }

    static func squeezeNode(
        _ input: String, _ output: String, axis: Int64, opset: Int64, name: String,
        initializers: inout [Onnx_TensorProto]
    ) -> Onnx_NodeProto {
        var n = node("Squeeze", [input], [output], name: name)
        if opset >= 13 {
            var t = Onnx_TensorProto(); t.name = "\(name)__axes"; t.dataType = Int32(ONNXDataType.int64.rawValue); t.dims = [1];
            t.int64Data = [axis]
            initializers.append(t)
            n.input.append(t.name)
        } else {
            var a = Onnx_AttributeProto(); a.name = "axes"; a.type = .ints; a.ints = [axis]
            n.attribute = [a]
        }
        return n
    }
}

import Foundation

/// Rewrites the model so TensorRT's ONNX parser calls the plugins: each covered node becomes a
/// node whose op_type is the plugin name (domain and plugin_namespace "tpat", plugin_version),
/// reading the node's non-constant inputs and writing its outputs under their original names.
/// Nodes inside If/Loop/Scan bodies are replaced in their body (named by path, Subgraphs).
/// Other nodes, initializers and tensor names stay as they are. Tensors TensorRT has no type
/// for are bridged with Cast nodes around the plugin. A plugin with data-dependent outputs gets
/// one extra output per size tensor (`<node>__tpat_size<k>`, read by nothing).
public enum ModelRewriter {
    public struct Replacement: Sendable {
        public var nodeName: String
        public var plugin: String
        public var extracted: ExtractedNode
        public var plan: KernelPlan
    }

    /// Returns the rewritten model and notes on each Cast bridge inserted.
    public static func rewrite(_ model: ONNXModel, replacements: [Replacement]) -> (ONNXModel, [String]) {
        var out = model
        var notes: [String] = []
        let index = GraphIndex(model.graph)
        let byName = Dictionary(replacements.map { ($0.nodeName, $0) }, uniquingKeysWith: { a, _ in a })
        // Names TPAT adds (Cast nodes and their tensors) must not collide with any name in the model.
        var taken = Set(index.names)
        func collect(_ g: Onnx_GraphProto) {
            for n in g.node {
                taken.insert(n.name); taken.formUnion(n.input); taken.formUnion(n.output)
                for a in n.attribute { if a.hasG { collect(a.g) }; a.graphs.forEach(collect) }
            }
            taken.formUnion(g.initializer.map(\.name)); taken.formUnion(g.input.map(\.name))
            taken.formUnion(g.output.map(\.name)); taken.formUnion(g.valueInfo.map(\.name))
        }
        collect(model.graph)
        func fresh(_ base: String) -> String {
            var name = base, k = 0
            while taken.contains(name) { k += 1; name = "\(base)_\(k)" }
            taken.insert(name)
            return name
        }
        // Declared types from every graph (tensor names are unique across scopes).
        var declared: [String: TensorInfo] = [:]
        func declare(_ g: Onnx_GraphProto) {
            for vi in g.input + g.valueInfo + g.output { if let info = TensorInfo(vi) { declared[vi.name] = declared[vi.name] ?? info } }
            for n in g.node { for a in n.attribute { Subgraphs.graphs(a).forEach(declare) } }
        }
        declare(model.graph)
        // Top-level nodes are matched by name, body nodes by path (Subgraphs.bodyPath): the
        // plugin node takes the body node's place in its body.
        func rewrite(_ graph: Onnx_GraphProto, prefix: String) -> Onnx_GraphProto {
            var graph = graph
            let names = GraphIndex.uniqueNames(graph.node)
            var nodes: [Onnx_NodeProto] = []
            for (i, var node) in graph.node.enumerated() {
                guard let r = byName[prefix + names[i]] else {
                    for a in node.attribute.indices {
                        let count = Subgraphs.graphs(node.attribute[a]).count
                        let path = { (k: Int) in
                            Subgraphs.bodyPath(owner: prefix + names[i], attribute: node.attribute[a].name, k: k, count: count) + " > "
                        }
                        if node.attribute[a].type == .graph { node.attribute[a].g = rewrite(node.attribute[a].g, prefix: path(0)) }
                        if node.attribute[a].type == .graphs {
                            node.attribute[a].graphs = node.attribute[a].graphs.enumerated().map { k, g in rewrite(g, prefix: path(k)) }
                        }
                    }
                    nodes.append(node)
                    continue
                }
                var plugin = Onnx_NodeProto()
                plugin.name = names[i]
                plugin.opType = r.plugin
                plugin.domain = PluginSource.namespace
                var tactic = Onnx_AttributeProto()
                tactic.name = "tactic"  // a creator field: 0 lets TensorRT choose among the plugin's tactics
                tactic.type = .int
                tactic.i = 0
                plugin.attribute = [
                    stringAttribute("plugin_version", PluginSource.version),
                    stringAttribute("plugin_namespace", PluginSource.namespace), tactic,
                ]
                var before: [Onnx_NodeProto] = [], after: [Onnx_NodeProto] = []
                for (k, source) in r.extracted.graphInputSources.enumerated() {
                    let inType = declared[source]?.dataType ?? .undefined
                    if let bridge = castTarget(
                        planDType: r.plan.inputs[k].dtype, original: inType, demoted: r.extracted.demoted.contains(source))
                    {
                        let name = fresh("\(source)__tpat_\(bridge.name)")
                        before.append(cast(source, to: name, type: bridge, node: fresh("\(plugin.name)__tpat_cast_in\(k)")))
                        plugin.input.append(name)
                        notes.append("\(plugin.name): input '\(source)' cast to \(bridge.name) for TensorRT")
                    } else {
                        plugin.input.append(source)
                    }
                }
                for (k, source) in r.extracted.graphOutputSources.enumerated() {
                    let original =
                        r.extracted.demoted.contains(source)
                        ? ONNXDataType.double : (ONNXDataType.named(r.plan.outputs[k].dtype) ?? .undefined)
                    if let bridge = castTarget(
                        planDType: r.plan.outputs[k].dtype, original: original, demoted: r.extracted.demoted.contains(source))
                    {
                        let name = fresh("\(source)__tpat_\(bridge.name)")
                        plugin.output.append(name)
                        after.append(cast(name, to: source, type: original, node: fresh("\(plugin.name)__tpat_cast_out\(k)")))
                        notes.append("\(plugin.name): output '\(source)' computed as \(bridge.name), cast back to \(original.name)")
                    } else {
                        plugin.output.append(source)
                    }
                }
                // Size tensors of data-dependent outputs (KernelPlan.sizeOf): extra plugin outputs
                // that nothing reads (TensorRT needs them; their values are the dims).
                for k in r.extracted.graphOutputSources.count..<max(r.extracted.graphOutputSources.count, r.plan.outputs.count) {
                    plugin.output.append(fresh("\(plugin.name)__tpat_size\(k)"))
                }
                nodes += before + [plugin] + after
            }
            graph.node = nodes
            return graph
        }
        out.proto.graph = rewrite(model.graph, prefix: "")
        if !replacements.isEmpty, !out.proto.opsetImport.contains(where: { $0.domain == PluginSource.namespace }) {
            var o = Onnx_OperatorSetIdProto()
            o.domain = PluginSource.namespace
            o.version = 1
            out.proto.opsetImport.append(o)
        }
        return (out, notes)
    }

    /// The type the plugin's tensor has in TensorRT when it differs from the model's.
    static func castTarget(planDType: String, original: ONNXDataType, demoted: Bool) -> ONNXDataType? {
        if demoted { return .float }
        return TensorRTType.bridged(planDType)
    }

    static func stringAttribute(_ name: String, _ value: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .string
        a.s = Data(value.utf8)
        return a
    }

    static func cast(_ input: String, to output: String, type: ONNXDataType, node: String) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.name = node
        n.opType = "Cast"
        n.input = [input]
        n.output = [output]
        var a = Onnx_AttributeProto()
        a.name = "to"
        a.type = .int
        a.i = Int64(type.rawValue)
        n.attribute = [a]
        return n
    }
}

extension ONNXDataType {
    /// The data type for a plan dtype name ("float32", "uint32", ...).
    public static func named(_ name: String) -> ONNXDataType? {
        allCases.first { $0.name == name }
    }
}

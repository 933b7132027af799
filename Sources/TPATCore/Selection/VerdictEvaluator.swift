/// Decides a verdict for every node of a model from the parser rules, the node's attributes,
/// its constant inputs and the inferred tensor types.
public struct VerdictEvaluator: Sendable {
    public let rules: ParserRules

    public init(rules: ParserRules) { self.rules = rules }

    public func evaluate(model: ONNXModel, tensors: [String: TensorInfo]) -> [NodeVerdict] {
        let index = GraphIndex(model.graph)
        return model.graph.node.indices.map { evaluate(node: $0, index: index, tensors: tensors) }
    }

    func info(_ name: String, _ index: GraphIndex, _ tensors: [String: TensorInfo]) -> TensorInfo? {
        tensors[name] ?? index.declared[name] ?? index.initializers[name].map(TensorInfo.init)
    }

    public func evaluate(node i: Int, index: GraphIndex, tensors: [String: TensorInfo]) -> NodeVerdict {
        let node = index.graph.node[i]
        let sig = { (n: String) -> String in n.isEmpty ? "-" : (self.info(n, index, tensors)?.signature ?? "?") }
        var v = NodeVerdict(
            index: i, name: index.nodeName(i), opType: node.opType, domain: node.domain,
            verdict: .supported, rule: nil, reason: "supported",
            inputs: node.input.map(sig), outputs: node.output.map(sig), unchecked: [], probe: nil)
        func reject(_ rule: String, _ reason: String) -> NodeVerdict {
            v.verdict = .unsupported; v.rule = rule; v.reason = reason; return v
        }
        guard node.isDefaultDomain else {
            return reject(
                "op",
                "op of domain '\(node.domain)': TensorRT's ONNX parser imports only the default domain (a plugin of that name must already exist)"
            )
        }
        guard let op = rules.ops[node.opType] else {
            return reject("op", "\(node.opType) is not an ONNX operator of opset <= \(rules.maxOpset) known to the rules")
        }
        guard op.status == .supported else {
            return reject("op", op.reason ?? "not supported by TensorRT's ONNX parser")
        }
        var notes: [String] = []
        // Types: every checked tensor must have a listed type. DOUBLE is cast down by the parser.
        let allowed = Set(op.types ?? [])
        let checked =
            (op.typeInputs ?? [0]).compactMap { node.input.indices.contains($0) ? node.input[$0] : nil }
            + (op.typeOutputs ?? []).compactMap { node.output.indices.contains($0) ? node.output[$0] : nil }
        for name in checked where !name.isEmpty {
            guard let t = info(name, index, tensors), t.dataType != .undefined else { continue }
            let trt = t.dataType.tensorRTName
            if allowed.contains(trt) { continue }
            if t.dataType == .double, allowed.contains("FP32") {
                notes.append("DOUBLE '\(name)' is cast to FP32 by the parser")
                continue
            }
            return reject(
                "dtype", "\(node.opType) on \(trt) ('\(name)'): TensorRT lists only \(op.types?.joined(separator: ", ") ?? "no types")")
        }
        for r in op.restrictions ?? [] {
            switch check(r, node: node, index: index, tensors: tensors) {
            case .pass: break
            case .violated(let why): return reject(r.id, "\(why) (TensorRT: \(r.text))")
            case .unchecked(let why): v.unchecked.append("\(r.id): \(why)")
            }
        }
        if !(op.restrictions ?? []).isEmpty || !notes.isEmpty {
            v.verdict = .restricted
            let ids = (op.restrictions ?? []).map(\.id)
            v.reason = (["meets " + ids.joined(separator: ", ")] + notes).joined(separator: "; ")
            if ids.isEmpty { v.reason = notes.joined(separator: "; ") }
        }
        return v
    }

    enum Outcome { case pass, violated(String), unchecked(String) }

    func check(_ r: ParserRules.Restriction, node: Onnx_NodeProto, index: GraphIndex, tensors: [String: TensorInfo]) -> Outcome {
        func input(_ k: Int?) -> String? {
            guard let k, node.input.indices.contains(k), !node.input[k].isEmpty else { return nil }
            return node.input[k]
        }
        switch r.kind {
        case .note:
            return .pass
        case .attributeIn:
            guard let name = r.attribute, let allowed = r.allowed else { return .pass }
            let value: ScalarValue?
            if let a = node.attribute(name) {
                value =
                    a.type == .string || (!a.s.isEmpty && a.type == .undefined) ? .string(String(decoding: a.s, as: UTF8.self)) : .int(a.i)
            } else {
                value = r.default
            }
            guard let value else { return .unchecked("attribute '\(name)' absent and no default") }
            return allowed.contains(value) ? .pass : .violated("\(name)=\(value)")
        case .attributeAllOnes:
            guard let name = r.attribute, let a = node.attribute(name) else { return .pass }
            return a.ints.allSatisfy { $0 == 1 } ? .pass : .violated("\(name)=\(a.ints)")
        case .attributeAbsent:
            guard let name = r.attribute else { return .pass }
            return node.attribute(name) == nil ? .pass : .violated("attribute '\(name)' is set")
        case .inputConstant:
            guard let name = input(r.input) else { return .pass }
            return index.isConstant(name) ? .pass : .violated("input '\(name)' is not a constant")
        case .inputConstantBelow:
            guard let name = input(r.input), let limit = r.limit else { return .pass }
            let shown = SafeText.number(limit)
            guard let t = index.constant(name) else {
                return .unchecked("input '\(name)' is not a constant; must stay below \(shown) at run time")
            }
            if let ints = TensorValues.integers(t) {  // integers shown exactly (2^63-1, not 9.2e18)
                if let bad = ints.first(where: { Double($0) >= limit }) { return .violated("'\(name)' = \(bad) (limit \(shown))") }
                return .pass
            }
            guard let values = TensorValues.doubles(t) else {
                return .unchecked(
                    "cannot read '\(name)' (\(TensorValues.payloadProblem(t) ?? "unsupported type")); must stay below \(shown)")
            }
            // NaN compares false with everything: it is not below the limit either.
            if let bad = values.first(where: { $0.isNaN || $0 >= limit }) {
                return .violated("'\(name)' = \(SafeText.number(bad)) (limit \(shown))")
            }
            return .pass
        case .inputConstantAllZero:
            guard let name = input(r.input) else { return .pass }
            guard let t = index.constant(name), let zero = TensorValues.isAllZero(t) else {
                return index.isConstant(name) ? .unchecked("cannot read '\(name)'") : .violated("input '\(name)' is not a constant")
            }
            return zero ? .pass : .violated("input '\(name)' is not zero/false")
        case .inputRankIn:
            guard let name = input(r.input ?? 0), let ranks = r.ranks else { return .pass }
            guard let rank = info(name, index, tensors)?.rank else { return .unchecked("rank of '\(name)' is unknown") }
            return ranks.contains(rank) ? .pass : .violated("'\(name)' has rank \(rank)")
        case .inputLastDimIn:
            guard let name = input(r.input ?? 0), let dims = r.dims else { return .pass }
            guard let last = info(name, index, tensors)?.shape?.last else { return .unchecked("shape of '\(name)' is unknown") }
            guard case .fixed(let d) = last else { return .unchecked("last dim of '\(name)' is symbolic") }
            return dims.contains(Int(d)) ? .pass : .violated("'\(name)' has last dim \(d)")
        case .inputAbsent:
            guard let name = input(r.input) else { return .pass }
            return .violated("input '\(name)' is given")
        case .inputStaticShape:
            guard let name = input(r.input ?? 0) else { return .pass }
            guard let t = info(name, index, tensors), t.shape != nil else { return .unchecked("shape of '\(name)' is unknown") }
            return t.isStatic ? .pass : .violated("'\(name)' has dynamic shape \(t.signature)")
        case .branchRanksEqual:
            return PluginBlockers.branchRankMismatch(node, tensors: tensors).map { .violated($0) } ?? .pass
        case .inputsLastDimEqual:
            let names = (r.inputs ?? []).compactMap { input($0) }
            var dims: [Dimension] = []
            for name in names {
                guard let last = info(name, index, tensors)?.shape?.last else { return .unchecked("last dim of '\(name)' is unknown") }
                dims.append(last)
            }
            guard let first = dims.first else { return .pass }
            if dims.allSatisfy({ $0 == first }), first != .unknown { return .pass }
            let fixed = Set(dims.compactMap { if case .fixed(let v) = $0 { v } else { nil } })
            if fixed.count > 1 { return .violated("last dims \(dims.map(\.description).joined(separator: " vs ")) differ") }
            return .unchecked("last dims \(dims.map(\.description).joined(separator: ", ")) must be equal at run time")
        case .inputAbsentWhenAttributeSet:
            guard let name = input(r.input), let attr = r.attribute, let a = node.attribute(attr), a.i != 0 else { return .pass }
            return .violated("input '\(name)' is given with \(attr)=\(a.i)")
        case .outputUnused:
            guard let k = r.output, node.output.indices.contains(k), !node.output[k].isEmpty else { return .pass }
            let name = node.output[k]
            let used = !(index.consumers[name] ?? []).isEmpty || index.graphOutputs.contains(name)
            return used ? .violated("output '\(name)' is used") : .pass
        }
    }
}

import Foundation
import Testing

@testable import TPATCore

/// Property-based fuzzing of the stages a hostile model goes through: loading, verdicts (inspect),
/// node extraction, plugin naming, rewriting and saving (generate's Swift side), in process; and
/// the real `tpat inspect` / `tpat generate` (Python shape inference, planning) on a few mutants.
/// Seeded and bounded: TPAT_FUZZ_ITERATIONS (default 200 in-process, `make fuzz`: 20000) and
/// TPAT_FUZZ_CLI (default 3 CLI runs, `make fuzz`: 40); TPAT_FUZZ_SEED picks the seed.
/// Properties: no crash or trap; every error is one line; report text is terminal-safe; plugin
/// names are identifiers; the rewritten graph is valid; saving writes only into its folder.
@Suite(.serialized) struct HostileFuzzTests {
    static let env = ProcessInfo.processInfo.environment
    static let iterations = Int(env["TPAT_FUZZ_ITERATIONS"] ?? "") ?? 200
    static let cliRuns = Int(env["TPAT_FUZZ_CLI"] ?? "") ?? 3
    static let seed = UInt64(env["TPAT_FUZZ_SEED"] ?? "") ?? 0x7A47_11

    static let strings = [
        "", "a", "x", "K", "v", "node", "TopK_0", "Relu_1", "dup", "a\nb", "\u{1b}[2J", "\u{202e}rev", "../x",
        "/etc/passwd", "é", "\u{0}", "*/", "\\", String(repeating: "L", count: 300), "in0", "out0", "const0",
    ]
    static let ops = [
        "TopK", "Relu", "Add", "OneHot", "Resize", "Gather", "ScatterND", "BitwiseAnd", "Reshape", "Pad",
        "Constant", "NonZero", "Unique", "CumSum", "LayerNormalization", "Loop", "If", "", "NoSuchOp",
    ]
    static let ints: [Int64] = [0, 1, -1, 2, 3, 4096, 3840, Int64.max, Int64.min, 1 << 32, -(1 << 40)]

    struct Rng {
        var g: SeededRandom
        mutating func int(_ n: Int) -> Int { n <= 0 ? 0 : Int(g.next() % UInt64(n)) }
        mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
        mutating func chance(_ p: Double) -> Bool { Double(g.next() % 10_000) / 10_000 < p }
    }

    /// Seed models (valid ones) the mutations start from.
    static func corpus() -> [Onnx_ModelProto] {
        var chain = ModelBuilder()
        chain.input("x")
        chain.initializer(ModelBuilder.float("w", [1, 2, 3, 4, 5, 6, 7, 8], dims: [8]))
        chain.node("Add", ["x", "w"], ["y"], name: "add")
        chain.node("Relu", ["y"], ["z"])
        chain.node(
            "Constant", [], ["c"], name: "const",
            attributes: [ModelBuilder.attribute("value", tensor: ModelBuilder.int64("cv", [2], dims: [1]))])
        chain.node("TopK", ["z", "c"], ["v", "i"], name: "topk", attributes: [ModelBuilder.attribute("axis", int: -1)])
        chain.output("v"); chain.output("i", .int64)
        var onehot = ModelBuilder(opset: 13)
        onehot.input("idx", .int64, [4])
        onehot.initializer(ModelBuilder.int64("depth", [10], dims: []))
        onehot.initializer(ModelBuilder.float("vals", [0, 1]))
        onehot.node("OneHot", ["idx", "depth", "vals"], ["o"], name: "onehot")
        onehot.output("o")
        return [ModelBuilder.topK(k: ModelBuilder.int64("K", [4096])).proto, ModelBuilder.bitwiseAnd().proto, chain.proto, onehot.proto]
    }

    static func mutateTensor(_ t: inout Onnx_TensorProto, _ r: inout Rng) {
        switch r.int(7) {
        case 0: t.rawData = Data((0..<r.int(17)).map { _ in UInt8(truncatingIfNeeded: r.g.next()) }); t.int64Data = []; t.floatData = []
        case 1: t.dims = (0..<r.int(4)).map { _ in r.pick(ints) }
        case 2: t.dataType = Int32(r.int(30))
        case 3: t.int64Data = (0..<r.int(4)).map { _ in r.pick(ints) }; t.rawData = Data()
        case 4: t.floatData = (0..<r.int(4)).map { _ in r.pick([Float.nan, .infinity, -.infinity, 1e30, -0.0, 3.5]) }; t.rawData = Data()
        case 5:
            t.doubleData = [r.pick([Double.nan, .infinity, 9.3e18, -1e300])]; t.dataType = ONNXDataType.double.rawValue; t.rawData = Data()
        default: t.name = r.pick(strings)
        }
    }

    /// Mutations that keep the graph's structure valid (names, attributes, data, types), so the
    /// mutant gets past the loader into shape inference, verdicts and planning.
    static let mild = [0, 4, 5, 6, 7, 9]

    static func mutate(_ m: inout Onnx_ModelProto, _ r: inout Rng, kinds: [Int] = Array(0..<12)) {
        let steps = 1 + r.int(4)
        for _ in 0..<steps {
            let n = m.graph.node.count
            switch r.pick(kinds) {
            case 0 where n > 0: m.graph.node[r.int(n)].name = r.pick(strings) + (r.chance(0.5) ? r.pick(strings) : "")
            case 1 where n > 0: m.graph.node[r.int(n)].opType = r.pick(ops)
            case 2 where n > 0: m.graph.node.append(m.graph.node[r.int(n)])
            case 3 where n > 0:
                let k = r.int(n)
                if m.graph.node[k].input.isEmpty {
                    m.graph.node[k].input.append(r.pick(strings))
                } else {
                    m.graph.node[k].input[r.int(m.graph.node[k].input.count)] = r.pick(strings + ["x", "y", "K", "c"])
                }
            case 4 where n > 0:
                var a = Onnx_AttributeProto(); a.name = r.pick(["axis", "sorted", "largest", "k", "mode", "value", "to"])
                if r.chance(0.5) { a.type = .int; a.i = r.pick(ints) } else { a.type = .string; a.s = Data(r.pick(strings).utf8) }
                m.graph.node[r.int(n)].attribute.append(a)
            case 5 where !m.graph.initializer.isEmpty: mutateTensor(&m.graph.initializer[r.int(m.graph.initializer.count)], &r)
            case 6 where n > 0: m.graph.node[r.int(n)].domain = r.pick(["", "ai.onnx", "com.microsoft", "evil\n"])
            case 7 where !m.graph.input.isEmpty:
                let k = r.int(m.graph.input.count)
                m.graph.input[k] = ModelBuilder.valueInfo(
                    m.graph.input[k].name, ONNXDataType(rawValue: Int32(r.int(17))) ?? .float,
                    r.chance(0.2) ? nil : (0..<r.int(4)).map { _ in r.pick(ints + [4, 8]) })
            case 8:
                var t = ModelBuilder.int64(r.pick(strings), [r.pick(ints)]); mutateTensor(&t, &r); m.graph.initializer.append(t)
            case 9 where n > 0:
                for k in m.graph.node.indices where m.graph.node[k].opType == "Constant" {
                    if let a = m.graph.node[k].attribute.firstIndex(where: { $0.hasT }) {
                        mutateTensor(&m.graph.node[k].attribute[a].t, &r)
                    }
                }
            case 10 where n > 1: m.graph.node.swapAt(r.int(n), r.int(n))
            default:
                if !m.graph.output.isEmpty { m.graph.output[r.int(m.graph.output.count)].name = r.pick(strings) }
            }
        }
    }

    /// The in-process pipeline on one model; checks the properties and returns how far it got.
    static func exercise(_ bytes: Data, dir: URL) throws -> String {
        let model: ONNXModel
        do { model = try ONNXModel.load(data: bytes, baseDirectory: dir, displayName: "fuzz.onnx") } catch {
            #expect(!error.message.contains("\n"))
            return "rejected"
        }
        let index = GraphIndex(model.graph)
        let names = model.graph.node.indices.map(index.nodeName)
        #expect(Set(names).count == names.count, "node names not unique: \(names)")
        // Shape inference stand-in: declared types plus initializers.
        var tensors: [String: TensorInfo] = index.declared
        for (k, v) in index.initializers { tensors[k] = TensorInfo(v) }
        let verdicts = VerdictEvaluator(rules: try ParserRules.bundled()).evaluate(model: model, tensors: tensors)
        let report = InspectReport(
            model: "fuzz.onnx", opsets: [:], rulesSource: "fuzz", histogram: [:], nodes: verdicts,
            pluginCandidates: verdicts.filter { $0.verdict == .unsupported }.map(\.name), probe: nil, warnings: [])
        let text = report.text()
        #expect(isTerminalSafe(text))
        #expect(text.split(separator: "\n").count >= verdicts.count)
        var replacements: [ModelRewriter.Replacement] = []
        let plan = try HostileInputTests.plan(opType: "Fuzz")
        for i in model.graph.node.indices {
            do {
                let node = try NodeExtractor.extract(nodeAt: i, index: index, model: model, tensors: tensors, demoteFloat64: true)
                let name = PluginSource.name(opType: node.opType, key: String(i, radix: 16))
                #expect(SafeText.isIdentifier(name), "\(name)")
                var p = plan
                let t = p.inputs[0]
                p.inputs = node.graphInputSources.map { _ in t }
                p.outputs = node.graphOutputSources.map { _ in t }
                replacements.append(.init(nodeName: node.sourceName, plugin: name, extracted: node, plan: p))
            } catch {
                #expect(!error.message.contains("\n"))
            }
        }
        let (rewritten, _) = ModelRewriter.rewrite(model, replacements: replacements)
        #expect(
            GraphIndex.structuralProblem(rewritten.graph) == nil, "rewritten graph: \(GraphIndex.structuralProblem(rewritten.graph) ?? "")")
        let out = dir.appendingPathComponent("out")
        try rewritten.save(to: out.appendingPathComponent("m.onnx"))
        let written = Set(try FileManager.default.contentsOfDirectory(atPath: out.path))
        #expect(written.isSubset(of: ["m.onnx", "m.onnx.data"]), "\(written)")
        try FileManager.default.removeItem(at: out)
        return replacements.isEmpty ? "no extraction" : "rewritten"
    }

    @Test func fuzzLoadVerdictsExtractionAndRewrite() throws {
        var r = Rng(g: SeededRandom(state: Self.seed))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(count: 64).write(to: dir.appendingPathComponent("data.bin"))
        let corpus = Self.corpus()
        var outcomes: [String: Int] = [:]
        for _ in 0..<Self.iterations {
            var m = r.pick(corpus)
            Self.mutate(&m, &r)
            var bytes: Data = try m.serializedBytes()
            if r.chance(0.15), !bytes.isEmpty {  // byte-level damage on top
                for _ in 0..<(1 + r.int(4)) { bytes[r.int(bytes.count)] = UInt8(truncatingIfNeeded: r.g.next()) }
                if r.chance(0.3) { bytes = bytes.prefix(r.int(bytes.count)) }
            }
            outcomes[try Self.exercise(bytes, dir: dir), default: 0] += 1
        }
        // The fuzzer reaches every stage, not only the loader.
        #expect((outcomes["rewritten"] ?? 0) > Self.iterations / 10, "\(outcomes)")
        #expect((outcomes["rejected"] ?? 0) > 0, "\(outcomes)")
    }

    /// The real CLI on mutants: Python shape inference and the bridge see them too.
    @Test func fuzzTheCLI() throws {
        var r = Rng(g: SeededRandom(state: Self.seed ^ 0xC11))
        let corpus = Self.corpus()
        var inspected = 0, generated = 0, generateRuns = 0
        defer { print("fuzz CLI: \(inspected) of \(Self.cliRuns) mutants inspected, \(generated) of \(generateRuns) generated") }
        defer {
            #expect(Self.cliRuns == 0 || inspected > 0, "no mutant got through inspect: the CLI fuzz reached only the loader")
            #expect(generateRuns == 0 || generated > 0, "no mutant got through generate")
        }
        for k in 0..<Self.cliRuns {
            let s = try Scratch(); defer { s.remove() }
            // Every third mutant goes through generate: the BitwiseAnd model (a plugin TVM plans)
            // with hostile node names, so planning succeeds and the names reach the renderers.
            let generates = k % 3 == 2
            var m = generates ? corpus[1] : r.pick(corpus)
            Self.mutate(&m, &r, kinds: generates ? [0] : Self.mild)
            let model = s.model.appendingPathComponent("m.onnx")
            let modelBytes: Data = try m.serializedBytes()
            try modelBytes.write(to: model)
            let before = s.snapshot()
            let inspect = try CLIRun.run(["inspect", model.path], timeout: 120)
            #expect(!inspect.hung && !inspect.crashed, "run \(k): \(inspect.stderr)")
            #expect(inspect.status == 0 || inspect.isOneLineError, "run \(k): status \(inspect.status): \(inspect.stderr)")
            if inspect.status == 0 { inspected += 1 }
            #expect(isTerminalSafe(inspect.stdout) && isTerminalSafe(inspect.stderr))
            if generates {
                let out = s.work.appendingPathComponent("out")
                let g = try CLIRun.run(["generate", model.path, "--auto", "--no-reference", "-o", out.path], timeout: 300)
                #expect(!g.hung && !g.crashed, "run \(k): \(g.stderr)")
                generateRuns += 1
                if g.status == 0 {
                    generated += 1
                    // Generated code and CMake: printable ASCII only (model text only escaped).
                    let e = FileManager.default.enumerator(atPath: out.appendingPathComponent("plugins").path)
                    var scanned = 0
                    defer { #expect(scanned >= 6, "run \(k): only \(scanned) generated sources found") }
                    while let p = e?.nextObject() as? String {
                        guard [".cpp", ".cu", ".h", ".cuh", ".txt", ".cmake"].contains(where: { p.hasSuffix($0) }) else { continue }
                        scanned += 1
                        let text = try String(contentsOf: out.appendingPathComponent("plugins/\(p)"), encoding: .utf8)
                        #expect(
                            text.unicodeScalars.allSatisfy { $0.isASCII && ($0.value >= 0x20 || $0 == "\n" || $0 == "\t") },
                            "run \(k): \(p)")
                    }
                } else {
                    print("fuzz CLI generate \(k): \(SafeText.terminal(String(g.stderr.prefix(600))))")
                }
                #expect(
                    g.status == 0 || g.stderr.hasSuffix("\n") && g.stderr.split(separator: "\n").last?.hasPrefix("error: ") == true,
                    "run \(k): \(g.stderr)")
                #expect(isTerminalSafe(g.stdout) && isTerminalSafe(g.stderr))
            }
            let changed = Scratch.changed(before, s.snapshot()).filter { !$0.hasPrefix("work") }
            #expect(changed.isEmpty, "run \(k) wrote outside OUT: \(changed)")
        }
    }
}

import Foundation

/// A complete, launchable plan of TVM's CUDA kernels for one node: the representation between
/// the planning stage and plugin generation. Mirrors schemas/kernel-plan.schema.json field for
/// field (docs/kernel-plan.md explains it).
public struct KernelPlan: Codable, Sendable, Equatable {
    public var formatVersion: Int
    public var tvmVersion: String
    public var target: Target
    public var opType: String
    /// The node's non-constant inputs, in node order.
    public var inputs: [Tensor]
    public var outputs: [Tensor]
    public var symbols: [Symbol]
    public var cudaSource: String
    public var compileFlags: [String]
    public var kernels: [Kernel]
    public var steps: [Step]
    public var buffers: [Buffer]
    public var workspaceAlignment: Int
    public var workspaceBytes: Expr
    public var constants: [Constant]
    /// The lowering that made the kernels: a TPAT lowering's registry name
    /// (python/tpat_bridge/lowerings/registry.py), or `tvmDefault` for TVM's own legalization.
    public var lowering: String
    /// The TPAT lowering's summary of what it chose (shapes, vector width...); nil for TVM's.
    public var loweringDetail: String?
    /// The TPAT lowerings registered for the op that declined the node, each with its reason.
    public var declined: [Declined]
    /// The `tpat tune` database whose schedules the plan uses (its folder name), if any.
    public var tuningDatabase: String?
    /// Notes for humans only; nothing reads them.
    public var fixups: [String]

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", tvmVersion = "tvm_version", target, opType = "op_type"
        case inputs, outputs, symbols, cudaSource = "cuda_source", compileFlags = "compile_flags"
        case kernels, steps, buffers, workspaceAlignment = "workspace_alignment"
        case workspaceBytes = "workspace_bytes", constants, lowering, loweringDetail = "lowering_detail"
        case declined, tuningDatabase = "tuning_database", fixups
    }

    /// `lowering` of a plan made by TVM's default legalization.
    public static let tvmDefault = "tvm-default"
    /// Whether TPAT's own lowering made the kernels.
    public var usesTPATLowering: Bool { lowering != Self.tvmDefault }

    /// A TPAT lowering that did not take the node, and why.
    public struct Declined: Codable, Sendable, Equatable {
        public var lowering: String
        public var reason: String
    }

    public struct Target: Codable, Sendable, Equatable {
        public var sm: String
        public var tvmTarget: TVMTarget
        enum CodingKeys: String, CodingKey { case sm, tvmTarget = "tvm_target" }
    }

    public struct TVMTarget: Codable, Sendable, Equatable {
        public var kind: String
        public var arch: String
        public var maxNumThreads: Int?
        public var maxThreadsPerBlock: Int?
        public var maxSharedMemoryPerBlock: Int?
        public var threadWarpSize: Int?
        enum CodingKeys: String, CodingKey {
            case kind, arch, maxNumThreads = "max_num_threads", maxThreadsPerBlock = "max_threads_per_block"
            case maxSharedMemoryPerBlock = "max_shared_memory_per_block", threadWarpSize = "thread_warp_size"
        }
    }

    public struct Tensor: Codable, Sendable, Equatable {
        public var name: String
        public var dtype: String
        /// Per dim: an integer or a symbol name (informational; use shapeExpr).
        public var shape: [ShapeEntry]
        public var shapeExpr: [Expr]
        /// Outputs only: dim `dim` is the value of output `sizeOutput` (shapeExpr[dim] its upper bound).
        public var dataDependent: DataDependent? = nil
        /// Outputs only: this 0-D int64 output is the size tensor of these outputs (no ONNX output).
        public var sizeOf: [Int]? = nil
        enum CodingKeys: String, CodingKey {
            case name, dtype, shape, shapeExpr = "shape_expr", dataDependent = "data_dependent", sizeOf = "size_of"
        }
    }

    /// A data-dependent output dim (IPluginV3 size tensors; docs/kernel-plan.md).
    public struct DataDependent: Codable, Sendable, Equatable {
        public var dim: Int
        public var sizeOutput: Int
        enum CodingKeys: String, CodingKey { case dim, sizeOutput = "size_output" }
    }

    /// Outputs that are size tensors (not ONNX outputs of the node): the trailing ones.
    public var sizeOutputCount: Int { outputs.filter { $0.sizeOf != nil }.count }

    public enum ShapeEntry: Codable, Sendable, Equatable {
        case int(Int64), text(String)
        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let i = try? c.decode(Int64.self) { self = .int(i) } else { self = .text(try c.decode(String.self)) }
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .int(let i): try c.encode(i)
            case .text(let s): try c.encode(s)
            }
        }
    }

    /// A symbolic dim and where it is read at run time: inputs[input].shape[dim].
    public struct Symbol: Codable, Sendable, Equatable {
        public var name: String
        public var input: Int
        public var dim: Int
    }

    public struct Kernel: Codable, Sendable, Equatable {
        public var name: String
        public var params: [Param]
    }

    public struct Param: Codable, Sendable, Equatable {
        public var name: String
        /// "ptr" or a C integer type (int32, int64, ...).
        public var type: String
        public var dtype: String
    }

    public struct Buffer: Codable, Sendable, Equatable {
        public var id: Int
        public var dtype: String
        public var shape: [Expr]
        public var bytes: Expr
        public var offset: Expr
    }

    public struct Constant: Codable, Sendable, Equatable {
        public var id: Int
        public var dtype: String
        public var shape: [Int64]
        /// Base64 of the raw little-endian element bytes.
        public var data: String
    }

    /// What a kernel argument or copy endpoint is bound to.
    public enum Binding: Codable, Sendable, Equatable {
        case input(Int), output(Int), buffer(Int), constant(Int), scalar(Expr)

        enum CodingKeys: String, CodingKey { case kind, index, id, expr }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            switch try c.decode(String.self, forKey: .kind) {
            case "input": self = .input(try c.decode(Int.self, forKey: .index))
            case "output": self = .output(try c.decode(Int.self, forKey: .index))
            case "buffer": self = .buffer(try c.decode(Int.self, forKey: .id))
            case "constant": self = .constant(try c.decode(Int.self, forKey: .id))
            case "scalar": self = .scalar(try c.decode(Expr.self, forKey: .expr))
            case let k: throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown binding kind \(k)")
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .input(let i): try c.encode("input", forKey: .kind); try c.encode(i, forKey: .index)
            case .output(let i): try c.encode("output", forKey: .kind); try c.encode(i, forKey: .index)
            case .buffer(let i): try c.encode("buffer", forKey: .kind); try c.encode(i, forKey: .id)
            case .constant(let i): try c.encode("constant", forKey: .kind); try c.encode(i, forKey: .id)
            case .scalar(let e): try c.encode("scalar", forKey: .kind); try c.encode(e, forKey: .expr)
            }
        }
    }

    /// One step of the host launch sequence.
    public indirect enum Step: Codable, Sendable, Equatable {
        case launch(kernel: String, args: [Binding], grid: [Expr], block: [Expr], dynamicSharedMemoryBytes: Expr)
        case loop(variable: String, begin: Expr, extent: Expr, body: [Step])
        case copy(source: Binding, destination: Binding, bytes: Expr)

        enum CodingKeys: String, CodingKey {
            case kind, kernel, args, grid, block, dynamicSharedMemoryBytes = "dynamic_shared_memory_bytes"
            case variable = "var", begin, extent, body, src, dst, bytes
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            switch try c.decode(String.self, forKey: .kind) {
            case "launch":
                self = .launch(
                    kernel: try c.decode(String.self, forKey: .kernel), args: try c.decode([Binding].self, forKey: .args),
                    grid: try c.decode([Expr].self, forKey: .grid), block: try c.decode([Expr].self, forKey: .block),
                    dynamicSharedMemoryBytes: try c.decode(Expr.self, forKey: .dynamicSharedMemoryBytes))
            case "loop":
                self = .loop(
                    variable: try c.decode(String.self, forKey: .variable), begin: try c.decode(Expr.self, forKey: .begin),
                    extent: try c.decode(Expr.self, forKey: .extent), body: try c.decode([Step].self, forKey: .body))
            case "copy":
                self = .copy(
                    source: try c.decode(Binding.self, forKey: .src), destination: try c.decode(Binding.self, forKey: .dst),
                    bytes: try c.decode(Expr.self, forKey: .bytes))
            case let k: throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown step kind \(k)")
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case let .launch(kernel, args, grid, block, smem):
                try c.encode("launch", forKey: .kind); try c.encode(kernel, forKey: .kernel); try c.encode(args, forKey: .args)
                try c.encode(grid, forKey: .grid); try c.encode(block, forKey: .block);
                try c.encode(smem, forKey: .dynamicSharedMemoryBytes)
            case let .loop(variable, begin, extent, body):
                try c.encode("loop", forKey: .kind); try c.encode(variable, forKey: .variable); try c.encode(begin, forKey: .begin)
                try c.encode(extent, forKey: .extent); try c.encode(body, forKey: .body)
            case let .copy(src, dst, bytes):
                try c.encode("copy", forKey: .kind); try c.encode(src, forKey: .src); try c.encode(dst, forKey: .dst);
                try c.encode(bytes, forKey: .bytes)
            }
        }
    }

    /// Decodes a plan and checks what the schema cannot: references between its parts.
    public static func decode(_ data: Data) throws(TPATError) -> KernelPlan {
        let plan: KernelPlan
        do { plan = try JSONDecoder().decode(KernelPlan.self, from: data) } catch {
            throw TPATError(.plan, "kernel plan does not match schemas/kernel-plan.schema.json: \(error)")
        }
        try plan.validate()
        return plan
    }

    static let dtypes: Set<String> = [
        "float32", "float16", "bfloat16", "float64", "int8", "uint8", "int16", "uint16",
        "int32", "uint32", "int64", "uint64", "bool",
    ]
    static let paramTypes: Set<String> = ["ptr", "int32", "int64", "uint32", "uint64", "int8", "int16", "uint8", "uint16", "bool"]

    static func isIdentifier(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f == "_" || (f.isASCII && f.properties.isAlphabetic) else { return false }
        return s.count <= 256
            && s.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    /// The schema's constraints that generated code relies on, beyond what decoding checks: every
    /// name that becomes C++ is an identifier, dtypes and targets are known, text that becomes a
    /// comment has no line breaks, compile flags are plain options, references resolve. A plan
    /// from the cache or the bridge is used only when this passes.
    public func validate() throws(TPATError) {
        func fail(_ why: String) -> TPATError { TPATError(.plan, "kernel plan rejected: \(why)") }
        guard formatVersion == 1 else { throw fail("format_version \(formatVersion)") }
        guard Planner.targets.contains(target.sm) else { throw fail("unknown target") }
        guard [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096].contains(workspaceAlignment) else {
            throw fail("workspace_alignment \(workspaceAlignment)")
        }
        let noControl = { (t: String, allowed: Set<Unicode.Scalar>) in
            !t.unicodeScalars.contains {
                !allowed.contains($0) && ($0.properties.generalCategory == .control || $0 == "\u{2028}" || $0 == "\u{2029}")
            }
        }
        let lineSafe = { (t: String) in t.count <= 1024 && noControl(t, []) }
        guard lineSafe(opType), lineSafe(tvmVersion) else { throw fail("op_type or tvm_version holds control characters") }
        let loweringName = { (t: String) in
            t == Self.tvmDefault
                || (!t.isEmpty && t.count <= 64
                    && t.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
        }
        guard loweringName(lowering), loweringDetail.map(lineSafe) ?? true, tuningDatabase.map(lineSafe) ?? true else {
            throw fail("lowering, lowering_detail or tuning_database")
        }
        for d in declined where !loweringName(d.lowering) || d.lowering == Self.tvmDefault || !lineSafe(d.reason) {
            throw fail("declined lowering")
        }
        for t in inputs + outputs {
            guard Self.dtypes.contains(t.dtype) else { throw fail("unknown dtype") }
            guard t.shapeExpr.count <= 8, t.shape.count == t.shapeExpr.count else { throw fail("tensor rank") }
            for case .text(let text) in t.shape where !lineSafe(text) { throw fail("shape text holds control characters") }
            guard lineSafe(t.name) else { throw fail("tensor name holds control characters") }
        }
        var kernelNames = Set<String>()
        for k in kernels {
            guard Self.isIdentifier(k.name), kernelNames.insert(k.name).inserted else {
                throw fail("kernel name is not a unique C identifier")
            }
            guard cudaSource.contains(k.name) else { throw fail("kernel \(k.name) is not in the CUDA source") }
            for p in k.params {
                guard Self.isIdentifier(p.name), Self.paramTypes.contains(p.type), Self.isIdentifier(p.dtype) else {
                    throw fail("parameter of kernel \(k.name)")
                }
            }
        }
        for b in buffers where !Self.dtypes.contains(b.dtype) { throw fail("buffer dtype") }
        for c in constants {
            guard Self.dtypes.contains(c.dtype), Data(base64Encoded: c.data) != nil else { throw fail("constant \(c.id)") }
        }
        for sym in symbols {
            guard lineSafe(sym.name), (0..<8).contains(sym.dim) else { throw fail("symbol") }
        }
        for f in compileFlags {
            guard f.hasPrefix("-"), f.count <= 200,
                f.unicodeScalars.allSatisfy({
                    $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-=.,+:/".unicodeScalars.contains($0))
                })
            else { throw fail("compile flag") }
        }
        guard !cudaSource.isEmpty, noControl(cudaSource, ["\n", "\t", "\r"]) else { throw fail("CUDA source holds control characters") }
        try checkReferences()
        try checkDataDependent()
    }

    /// Size outputs are 0-D int64, trail the node's outputs, and match the outputs naming them.
    func checkDataDependent() throws(TPATError) {
        func fail(_ why: String) -> TPATError { TPATError(.plan, "kernel plan rejected: \(why)") }
        let first = outputs.firstIndex { $0.sizeOf != nil } ?? outputs.count
        for (j, t) in outputs.enumerated() {
            if let of = t.sizeOf {
                guard j >= first, t.dtype == "int64", t.shapeExpr.isEmpty, t.dataDependent == nil, !of.isEmpty else {
                    throw fail("size output \(j) is not a trailing 0-D int64 tensor")
                }
                for k in of where !(0..<first).contains(k) || outputs[k].dataDependent?.sizeOutput != j {
                    throw fail("size output \(j) names output \(k), which does not name it")
                }
            } else if j >= first {
                throw fail("output \(j) follows a size output")
            }
            if let dd = t.dataDependent {
                guard j < first, t.shapeExpr.indices.contains(dd.dim), outputs.indices.contains(dd.sizeOutput),
                    outputs[dd.sizeOutput].sizeOf?.contains(j) == true
                else {
                    throw fail("data-dependent output \(j) has no matching size output")
                }
            }
        }
    }

    func checkReferences() throws(TPATError) {
        let kernelsByName = Dictionary(kernels.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let bufferIDs = Set(buffers.map(\.id)), constantIDs = Set(constants.map(\.id))
        func check(_ b: Binding) throws(TPATError) {
            switch b {
            case .input(let i) where !inputs.indices.contains(i): throw TPATError(.plan, "plan binds missing input \(i)")
            case .output(let i) where !outputs.indices.contains(i): throw TPATError(.plan, "plan binds missing output \(i)")
            case .buffer(let i) where !bufferIDs.contains(i): throw TPATError(.plan, "plan binds missing buffer \(i)")
            case .constant(let i) where !constantIDs.contains(i): throw TPATError(.plan, "plan binds missing constant \(i)")
            default: break
            }
        }
        func walk(_ steps: [Step]) throws(TPATError) {
            for s in steps {
                switch s {
                case let .launch(kernel, args, _, _, _):
                    guard let k = kernelsByName[kernel] else { throw TPATError(.plan, "plan launches unknown kernel \(kernel)") }
                    guard k.params.count == args.count else {
                        throw TPATError(.plan, "kernel \(kernel) takes \(k.params.count) parameters, the plan passes \(args.count)")
                    }
                    for a in args { try check(a) }
                case let .loop(_, _, _, body): try walk(body)
                case let .copy(src, dst, _): try check(src); try check(dst)
                }
            }
        }
        try walk(steps)
        for s in symbols where !inputs.indices.contains(s.input) {
            throw TPATError(.plan, "symbol \(s.name) reads missing input \(s.input)")
        }
    }

    /// Number of kernel launches in the plan, counting each loop body once.
    public var launchCount: Int {
        func count(_ steps: [Step]) -> Int {
            steps.reduce(0) { n, s in
                switch s {
                case .launch: n + 1
                case let .loop(_, _, _, body): n + count(body)
                case .copy: n
                }
            }
        }
        return count(steps)
    }
}

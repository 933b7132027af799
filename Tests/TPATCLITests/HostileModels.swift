import Foundation

@testable import TPATCore

/// Builds the hostile models of HostileInputTests in code (no binary blobs): an ONNX graph with
/// whatever names, data and external-data entries a test wants.
struct ModelBuilder {
    var proto = Onnx_ModelProto()

    init(opset: Int64 = 17) {
        proto.irVersion = 8
        proto.producerName = "tpat-hostile-tests"
        var o = Onnx_OperatorSetIdProto(); o.domain = ""; o.version = opset
        proto.opsetImport = [o]
    }

    static func valueInfo(_ name: String, _ type: ONNXDataType, _ dims: [Int64]?) -> Onnx_ValueInfoProto {
        var tt = Onnx_TypeProto.Tensor()
        tt.elemType = type.rawValue
        if let dims {
            var s = Onnx_TensorShapeProto()
            s.dim = dims.map {
                var d = Onnx_TensorShapeProto.Dimension(); d.dimValue = $0; return d
            }
            tt.shape = s
        }
        var t = Onnx_TypeProto(); t.tensorType = tt
        var vi = Onnx_ValueInfoProto(); vi.name = name; vi.type = t
        return vi
    }

    mutating func input(_ name: String, _ type: ONNXDataType = .float, _ dims: [Int64]? = [4, 8]) {
        proto.graph.input.append(Self.valueInfo(name, type, dims))
    }

    mutating func output(_ name: String, _ type: ONNXDataType = .float, _ dims: [Int64]? = nil) {
        proto.graph.output.append(Self.valueInfo(name, type, dims))
    }

    mutating func node(
        _ op: String, _ inputs: [String], _ outputs: [String], name: String = "", domain: String = "",
        attributes: [Onnx_AttributeProto] = [], doc: String = ""
    ) {
        var n = Onnx_NodeProto()
        n.opType = op; n.input = inputs; n.output = outputs; n.name = name; n.domain = domain
        n.attribute = attributes; n.docString = doc
        proto.graph.node.append(n)
    }

    mutating func initializer(_ t: Onnx_TensorProto) { proto.graph.initializer.append(t) }

    static func int64(_ name: String, _ values: [Int64], dims: [Int64]? = nil) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name; t.dataType = ONNXDataType.int64.rawValue; t.dims = dims ?? [Int64(values.count)]; t.int64Data = values
        return t
    }

    static func float(_ name: String, _ values: [Float], dims: [Int64]? = nil) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name; t.dataType = ONNXDataType.float.rawValue; t.dims = dims ?? [Int64(values.count)]; t.floatData = values
        return t
    }

    static func raw(_ name: String, _ type: ONNXDataType, dims: [Int64], bytes: Data) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name; t.dataType = type.rawValue; t.dims = dims; t.rawData = bytes
        return t
    }

    /// A tensor whose data is external: `entries` become its external_data (location, offset, ...).
    static func external(_ name: String, _ type: ONNXDataType, dims: [Int64], _ entries: [(String, String)]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name; t.dataType = type.rawValue; t.dims = dims; t.dataLocation = .external
        t.externalData = entries.map {
            var e = Onnx_StringStringEntryProto(); e.key = $0.0; e.value = $0.1; return e
        }
        return t
    }

    static func attribute(_ name: String, int: Int64) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .int; a.i = int; return a
    }

    static func attribute(_ name: String, string: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .string; a.s = Data(string.utf8); return a
    }

    static func attribute(_ name: String, tensor: Onnx_TensorProto) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .tensor; a.t = tensor; return a
    }

    func data() throws -> Data { try proto.serializedBytes() }

    @discardableResult
    func write(to url: URL) throws -> URL {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data().write(to: url)
        return url
    }

    /// x[4,8] -> TopK(x, K) -> v, i: TopK reads K as a constant.
    static func topK(k: Onnx_TensorProto, name: String = "topk") -> ModelBuilder {
        var m = ModelBuilder()
        m.input("x")
        m.initializer(k)
        m.node("TopK", ["x", k.name], ["v", "i"], name: name)
        m.output("v"); m.output("i", .int64)
        return m
    }

    /// a, b: int32[4] -> BitwiseAnd (no TensorRT importer: TPAT makes it a plugin) -> y, then Relu-free
    /// Identity so the graph has a supported node too.
    static func bitwiseAnd(nodeName: String = "band") -> ModelBuilder {
        var m = ModelBuilder(opset: 18)
        m.input("a", .int32, [4]); m.input("b", .int32, [4])
        m.node("BitwiseAnd", ["a", "b"], ["y"], name: nodeName)
        m.node("Identity", ["y"], ["z"], name: "id")
        m.output("z", .int32, [4])
        return m
    }
}

/// A scratch area per test: `model/` (the model's folder), `outside/` (must never be read),
/// `work/` (where OUT goes). Snapshots tell what a run changed.
struct Scratch {
    let root: URL
    var model: URL { root.appendingPathComponent("model") }
    var outside: URL { root.appendingPathComponent("outside") }
    var work: URL { root.appendingPathComponent("work") }
    /// A secret outside the model's folder: no run may print it or copy it anywhere.
    static let secret = "TPAT-SECRET-\(UUID().uuidString)"

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-hostile-\(UUID().uuidString)")
        for d in ["model", "outside", "work"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(d), withIntermediateDirectories: true)
        }
        try Data((Self.secret + "\n" + String(repeating: "S", count: 4096)).utf8).write(to: outside.appendingPathComponent("secret.bin"))
    }

    /// Every path under the scratch root with its size and modification time (links not followed).
    func snapshot() -> [String: String] {
        var out: [String: String] = [:]
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: root.path) else { return out }
        while let p = e.nextObject() as? String {
            var st = stat()
            guard lstat(root.appendingPathComponent(p).path, &st) == 0 else { continue }
            // A folder counts by its entries (listed on their own), not by its mtime: TPAT's lock
            // and staging folder live beside OUT while it runs and are gone after.
            out[p] = st.st_mode & S_IFMT == S_IFDIR ? "dir" : "\(st.st_mode) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
        }
        return out
    }

    /// Paths that differ between two snapshots.
    static func changed(_ a: [String: String], _ b: [String: String]) -> [String] {
        Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted()
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}

/// Runs the built `tpat` binary with a deadline: a run past it is killed and reported as a hang.
struct CLIRun {
    var status: Int32
    var stdout: String
    var stderr: String
    var hung: Bool
    var crashed: Bool { !hung && (status > 128 || status < 0) }

    /// The run ended with exactly one `error: ` line on stderr and exit code 2.
    var isOneLineError: Bool {
        status == 2 && stderr.split(whereSeparator: \.isNewline).count == 1 && stderr.hasPrefix("error: ")
    }

    static func run(
        _ args: [String], environment: [String: String] = [:], timeout: TimeInterval = 300,
        cwd: URL = CLITests.root
    ) throws -> CLIRun {
        let p = Process()
        p.executableURL = CLITests.tpat
        p.arguments = args
        p.currentDirectoryURL = cwd
        var env = ProcessInfo.processInfo.environment
        env["TPAT_HOME"] = CLITests.root.path
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        try p.run()
        let group = DispatchGroup()
        final class Box: @unchecked Sendable { var data = Data() }
        let o = Box(), e = Box()
        DispatchQueue.global().async(group: group) { o.data = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { e.data = err.fileHandleForReading.readDataToEndOfFile() }
        var hung = false
        if done.wait(timeout: .now() + timeout) == .timedOut {
            hung = true
            kill(-p.processIdentifier, SIGKILL)
            p.terminate()
            kill(p.processIdentifier, SIGKILL)
            done.wait()
        }
        _ = group.wait(timeout: .now() + 10)
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return CLIRun(
            status: status, stdout: String(decoding: o.data, as: UTF8.self), stderr: String(decoding: e.data, as: UTF8.self), hung: hung)
    }
}

/// True when the text has no control character but newline and tab, and no bidi override: what a
/// terminal shows is what it says.
func isTerminalSafe(_ s: String) -> Bool {
    !s.unicodeScalars.contains { u in
        let v = u.value
        return (v < 0x20 && v != 0x0A && v != 0x09) || (0x7F...0x9F).contains(v) || (0x202A...0x202E).contains(v)
            || (0x2066...0x2069).contains(v) || v == 0x2028 || v == 0x2029
    }
}

/// Deterministic generator for the fuzz tests (SplitMix64).
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476C_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

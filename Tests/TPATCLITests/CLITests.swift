import Foundation
import Testing

/// Runs the built `tpat` executable as a user would.
@Suite(.serialized) struct CLITests {
    init() {}
    static let root: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    /// The tpat binary SwiftPM built next to this test bundle.
    static let tpat: URL = {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("tpat")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return root.appendingPathComponent(".build/debug/tpat")
    }()

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    func run(_ args: [String], environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = Self.tpat
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.currentDirectoryURL = Self.root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func fixture(_ name: String) -> String { Self.root.appendingPathComponent("tests/fixtures/models/\(name)").path }

    @Test func inspectPrintsTableAndCandidates() throws {
        let r = try run(["inspect", fixture("verdicts_basic.onnx"), "--trt", "10"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Op histogram"))
        #expect(r.stdout.contains("scatternd_add"))
        #expect(r.stdout.contains("Rules: TensorRT 10.x rules"))
        let candidates = try #require(r.stdout.components(separatedBy: "Plugin candidates (7):").last)
        #expect(candidates.contains("topk_k4096"))
        #expect(!candidates.contains("relu_ok"))
    }

    @Test func inspectJSONIsComplete() throws {
        let r = try run(["inspect", "--json", fixture("verdicts_unsupported_ops.onnx")])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let nodes = try #require(obj["nodes"] as? [[String: Any]])
        #expect(nodes.count == 8)
        #expect(nodes.allSatisfy { $0["name"] is String && $0["opType"] is String && ($0["verdict"] as? String) == "unsupported" })
        #expect((obj["pluginCandidates"] as? [String])?.count == 8)
    }

    @Test func probeNamesTheParser() throws {
        let r = try run(["inspect", "--probe", fixture("verdicts_unsupported_ops.onnx")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Probe: TensorRT"))
        #expect(r.stdout.contains("parser: fails"))
    }

    @Test(arguments: ["missing", "directory", "random", "truncated", "tensor", "empty-graph", "no-external-data"])
    func badInputExitsTwoWithOneLine(kind: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("bad.onnx")
        let good = try Data(contentsOf: URL(fileURLWithPath: fixture("symbolic.onnx")))
        switch kind {
        case "missing": break
        case "directory": try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
        case "random": try Data((0..<2048).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }).write(to: path)
        case "truncated": try good.prefix(good.count / 2).write(to: path)
        case "tensor": try Data([0x08, 0x02, 0x10, 0x01, 0x42, 0x01, 0x77]).write(to: path)  // a TensorProto
        case "empty-graph": try Data([0x08, 0x0a, 0x3a, 0x02, 0x12, 0x00, 0x42, 0x02, 0x10, 0x14]).write(to: path)
        case "no-external-data": try FileManager.default.copyItem(atPath: fixture("external_data.onnx"), toPath: path.path)
        default: break
        }
        let r = try run(["inspect", path.path])
        #expect(r.status == 2, "\(kind): \(r.stdout)")
        let lines = r.stderr.split(whereSeparator: \.isNewline)
        #expect(lines.count == 1, "\(kind): \(r.stderr)")
        #expect(lines.first?.hasPrefix("error: ") == true)
    }

    /// GPU-stage commands on a folder that holds no generated project: one line, exit 2.
    @Test(arguments: ["tune", "verify", "bench", "build"])
    func gpuCommandsRefuseAFolderWithoutAProject(name: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let r = try run([name, dir.path])
        #expect(r.status == 2, "\(name): \(r.stdout)")
        #expect(r.stderr.split(whereSeparator: \.isNewline).count == 1, "\(name): \(r.stderr)")
        #expect(r.stderr.hasPrefix("error: "))
    }

    @Test func planRefusesAMissingTuningDatabase() throws {
        let r = try run([
            "plan", fixture("plugins_symbolic.onnx"), "--node", "band_a", "--database", "/no/such/database", "-o", "/dev/null",
        ])
        #expect(r.status == 2)
        #expect(r.stderr.contains("no MetaSchedule database"))
        #expect(r.stderr.split(whereSeparator: \.isNewline).count == 1)
    }

    @Test func helpListsEverySubcommand() throws {
        let r = try run(["--help"])
        #expect(r.status == 0)
        for s in ["inspect", "plan", "generate", "build", "engine", "verify", "bench", "tune", "demo"] {
            #expect(r.stdout.contains(s))
        }
    }
}

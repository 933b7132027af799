import Foundation
import SwiftProtobuf
import Testing

@testable import TPATCore

@Suite struct ModelLoaderTests {
    @Test func roundTripKeepsTheModel() throws {
        let original = try ONNXModel.load(path: Repo.fixture("verdicts_basic.onnx").path)
        let dir = try temporaryDirectory()
        let copy = dir.appendingPathComponent("copy.onnx")
        try original.save(to: copy)
        let again = try ONNXModel.load(path: copy.path)
        #expect(again.proto == original.proto)
        #expect(again.graph.node.count == 17)
    }

    @Test func externalDataIsReadAndWrittenBack() throws {
        let original = try ONNXModel.load(path: Repo.fixture("external_data.onnx").path)
        #expect(!original.externalLocations.isEmpty)
        let weights = try #require(original.graph.initializer.first { original.externalLocations[$0.name] != nil })
        #expect(weights.dataLocation == .default)
        #expect(weights.rawData.count >= 1024)

        let dir = try temporaryDirectory()
        let copy = dir.appendingPathComponent("copy.onnx")
        try original.save(to: copy)
        // The data went back out to a file beside the new model, not into the model itself.
        let written = try Onnx_ModelProto(serializedBytes: Data(contentsOf: copy))
        let external = written.graph.initializer.filter { $0.dataLocation == .external }
        #expect(external.count == original.externalLocations.count)
        #expect(external.allSatisfy { $0.rawData.isEmpty })
        let location = try #require(external.first?.externalData.first { $0.key == "location" }?.value)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(location).path))

        let again = try ONNXModel.load(path: copy.path)
        #expect(again.proto == original.proto)
        // Same tensors external, all in one data file whose name TPAT chose (never the input's).
        #expect(Set(again.externalLocations.keys) == Set(original.externalLocations.keys))
        #expect(Set(again.externalLocations.values) == ["copy.onnx.data"])
    }

    @Test func missingExternalDataFileIsAnError() throws {
        let dir = try temporaryDirectory()
        let lone = dir.appendingPathComponent("model.onnx")
        try FileManager.default.copyItem(at: Repo.fixture("external_data.onnx"), to: lone)
        #expect { try ONNXModel.load(path: lone.path) } throws: { error in
            (error as? TPATError)?.message.contains("is missing") == true
        }
    }

    @Test func externalDataOutsideTheFolderIsRefused() throws {
        var model = try ONNXModel.load(path: Repo.fixture("external_data.onnx").path).proto
        model.graph.initializer[0].dataLocation = .external
        var entry = Onnx_StringStringEntryProto(); entry.key = "location"; entry.value = "../../etc/passwd"
        model.graph.initializer[0].externalData = [entry]
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("evil.onnx")
        try (model.serializedBytes() as Data).write(to: path)
        #expect(throws: TPATError.self) { try ONNXModel.load(path: path.path) }
    }

    @Test(arguments: [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("random", "not an ONNX model"),
        ("empty-file", "is empty"),
        ("tensor", "not an ONNX model"),
        ("empty-graph", "empty graph"),
    ])
    func badInputGivesOneLineError(kind: String, expected: String) throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("bad.onnx")
        switch kind {
        case "missing": break
        case "directory": try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
        case "random":
            var rng = SeededRandom(state: 7)
            try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }).write(to: path)
        case "empty-file": try Data().write(to: path)
        case "tensor":
            var t = Onnx_TensorProto(); t.name = "w"; t.dims = [2]; t.dataType = 1; t.floatData = [1, 2]
            try (t.serializedBytes() as Data).write(to: path)
        case "empty-graph":
            var m = Onnx_ModelProto(); m.irVersion = 10
            var o = Onnx_OperatorSetIdProto(); o.version = 20; m.opsetImport = [o]
            m.graph.name = "empty"
            try (m.serializedBytes() as Data).write(to: path)
        default: Issue.record("unknown case")
        }
        do {
            _ = try ONNXModel.load(path: path.path)
            Issue.record("\(kind) loaded")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
            #expect(!error.message.contains("\n"))
        }
    }

    @Test func truncatedModelsNeverCrash() throws {
        let bytes = try Data(contentsOf: Repo.fixture("verdicts_basic.onnx"))
        let dir = try temporaryDirectory()
        var failures = 0
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 500)) {
            do { _ = try ONNXModel.load(data: bytes.prefix(cut), baseDirectory: dir) } catch { failures += 1 }
        }
        #expect(failures > 0)
    }

    /// 1000 mutated copies (byte flips, inserted and deleted runs, truncations) of a real model:
    /// each either loads or fails with a TPATError; none crashes or hangs.
    @Test func mutatedModelsNeverCrash() throws {
        let original = [UInt8](try Data(contentsOf: Repo.fixture("symbolic.onnx")))
        let dir = try temporaryDirectory()
        var rng = SeededRandom(state: 2026)
        var loaded = 0, rejected = 0
        for _ in 0..<1000 {
            var b = original
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let at = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: b[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: b[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                case 2:
                    b.insert(
                        contentsOf: (0..<Int.random(in: 1...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
                default: b.removeSubrange(at..<min(b.count, at + Int.random(in: 1...32, using: &rng)))
                }
                if b.isEmpty { b = [0] }
            }
            if Bool.random(using: &rng) { b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng))) }
            do {
                let m = try ONNXModel.load(data: Data(b), baseDirectory: dir)
                _ = GraphIndex(m.graph)
                loaded += 1
            } catch {
                rejected += 1
            }
        }
        #expect(loaded + rejected == 1000)
        #expect(rejected > 100)
    }

    @Test func graphQueries() throws {
        let model = try ONNXModel.load(path: Repo.fixture("verdicts_basic.onnx").path)
        let index = GraphIndex(model.graph)
        #expect(model.opsetVersion(domain: "") == 20)
        #expect(model.opsetVersion(domain: "ai.onnx") == 20)
        let constantNode = try #require(model.graph.node.firstIndex { $0.opType == "Constant" })
        let constOut = model.graph.node[constantNode].output[0]
        #expect(index.producer[constOut] == constantNode)
        #expect(index.isConstant(constOut))
        #expect(!(index.consumers[constOut] ?? []).isEmpty)
        for (name, consumers) in index.consumers {
            for c in consumers { #expect(model.graph.node[c].input.contains(name)) }
        }
        #expect(index.initializers.keys.contains("k_4096"))
        #expect(TensorValues.integers(try #require(index.constant("k_4096"))) == [4096])
        #expect(!index.graphInputs.isEmpty)
        #expect(index.graphInputs.isDisjoint(with: index.initializers.keys))
    }
}

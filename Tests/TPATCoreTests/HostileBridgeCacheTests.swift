import Foundation
import SwiftProtobuf
import Testing

@testable import TPATCore

#if canImport(Glibc)
import Glibc
#endif

/// Issue 11, items 5 and 6: the bridge's timeout, process-group teardown and crash reports (with
/// fake Pythons: shell scripts), and the plan cache refusing tampered or corrupt entries.
@Suite struct HostileBridgeCacheTests {
    /// A fake TPAT_PYTHON: a shell script in its own temporary folder.
    static func fakePython(_ body: String) throws -> (script: URL, dir: URL) {
        let dir = try temporaryDirectory()
        let script = dir.appendingPathComponent("python")
        try ("#!/bin/sh\nD='\(dir.path)'\n" + body + "\n").write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        return (script, dir)
    }

    /// Process ids a fake Python wrote to D/pids (itself and its child).
    static func pids(_ dir: URL) -> [Int32] {
        ((try? String(contentsOf: dir.appendingPathComponent("pids"), encoding: .utf8)) ?? "")
            .split(whereSeparator: \.isNewline).compactMap { Int32($0) }
    }

    /// True when every process is gone within `seconds`.
    static func allGone(_ pids: [Int32], within seconds: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if pids.allSatisfy({ kill($0, 0) != 0 && errno == ESRCH }) { return true }
            usleep(50_000)
        }
        return false
    }

    static let sleeper = "echo $$ > \"$D/pids\"\nsleep 300 &\necho $! >> \"$D/pids\"\nwait"

    @Test func timeoutEndsThePythonAndItsChildren() async throws {
        let (python, dir) = try Self.fakePython(Self.sleeper)
        let bridge = PythonBridge(root: Repo.root, python: python.path)
        let start = Date()
        do {
            _ = try await bridge.call(BridgeMessages.VersionRequest(), as: BridgeMessages.Versions.self, timeout: .seconds(1))
            Issue.record("a hung bridge answered")
        } catch {
            #expect(error.kind == .bridge)
            #expect(error.message.contains("did not answer 'version' within 1 s"), "\(error.message)")
            #expect(!error.message.contains("\n"))
        }
        // The fake sleeps 300 s: returning before that (with the timeout's message above) proves the
        // timeout; parallel tests on 2 cores can delay the timer task by minutes, hence the margin.
        #expect(Date().timeIntervalSince(start) < 290)
        let pids = Self.pids(dir)
        #expect(pids.count == 2)
        #expect(Self.allGone(pids), "bridge processes \(pids) still run after the timeout")
        #expect(!ChildProcesses.shared.runningGroups.contains(pids.first ?? -1))
    }

    @Test func cancellingTheTaskEndsThePython() async throws {
        let (python, dir) = try Self.fakePython(Self.sleeper)
        let bridge = PythonBridge(root: Repo.root, python: python.path)
        let task = Task { () async throws(TPATError) -> BridgeMessages.Versions in
            try await bridge.call(BridgeMessages.VersionRequest(), as: BridgeMessages.Versions.self, timeout: .seconds(600))
        }
        var waited = 0
        while Self.pids(dir).count < 2 && waited < 1200 { try await Task.sleep(for: .milliseconds(50)); waited += 1 }
        task.cancel()
        _ = await task.result
        let pids = Self.pids(dir)
        #expect(pids.count == 2)
        #expect(Self.allGone(pids), "bridge processes \(pids) still run after cancellation")
    }

    @Test func aCrashIsOneLine() async throws {
        let (python, _) = try Self.fakePython(
            "cat > /dev/null\necho 'Fatal Python error: Segmentation fault' >&2\necho 'more' >&2\nkill -SEGV $$")
        let bridge = PythonBridge(root: Repo.root, python: python.path)
        do {
            _ = try await bridge.call(BridgeMessages.ModelRequest.inferShapes("/nonexistent.onnx"), as: BridgeMessages.ShapeResult.self)
            Issue.record("a crashed bridge answered")
        } catch {
            #expect(error.kind == .bridge)
            #expect(error.message.contains("crashed (signal 11) in 'infer_shapes'"), "\(error.message)")
            #expect(error.message.contains("more"))
            #expect(!error.message.contains("\n"))
        }
    }

    @Test func timeoutsPerKindAndFromTheEnvironment() throws {
        #expect(try PythonBridge.timeout(command: "plan", environment: [:]) == .seconds(1800))
        #expect(try PythonBridge.timeout(command: "version", environment: [:]) == .seconds(600))
        #expect(try PythonBridge.timeout(command: "unknown", environment: [:]) == .seconds(3600))
        #expect(try PythonBridge.timeout(command: "plan", environment: ["TPAT_BRIDGE_TIMEOUT": "2.5"]) == .milliseconds(2500))
        for bad in ["abc", "-1", "0", "inf", "nan", "1e300"] {
            #expect(throws: TPATError.self) { try PythonBridge.timeout(command: "plan", environment: ["TPAT_BRIDGE_TIMEOUT": bad]) }
        }
    }

    // MARK: - plan cache

    /// A one-node model (no bridge needed): `op` on float input x[n].
    static func node(_ name: String, op: String, n: Int64) throws -> ExtractedNode {
        var proto = Onnx_ModelProto()
        proto.irVersion = 10
        var opset = Onnx_OperatorSetIdProto(); opset.version = 20
        proto.opsetImport = [opset]
        var node = Onnx_NodeProto(); node.opType = op; node.name = name; node.input = ["x"]; node.output = ["y"]
        proto.graph.node = [node]
        proto.graph.input = [NodeExtractor.valueInfo("x", .float, [.fixed(n)])]
        proto.graph.output = [NodeExtractor.valueInfo("y", .float, [.fixed(n)])]
        return try NodeExtractor.extract(node: name, from: ONNXModel(proto: proto), tensors: [:])
    }

    static func fixturePlan(_ name: String = "ScatterND_7a375313") throws -> KernelPlan {
        try KernelPlan.decode(Data(contentsOf: Repo.root.appendingPathComponent("tests/fixtures/plans/\(name).plan.json")))
    }

    /// Rewrites the JSON object of a cache file.
    static func edit(_ url: URL, _ change: (inout [String: Any]) -> Void) throws {
        var obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        change(&obj)
        try JSONSerialization.data(withJSONObject: obj).write(to: url)
    }

    @Test func cacheEntriesAreCheckedAgainstKeyNodeAndPlan() throws {
        let cache = PlanCache(directory: try temporaryDirectory())
        let a = try Self.node("a", op: "Relu", n: 4), b = try Self.node("b", op: "Neg", n: 4)
        let keyA = PlanCache.key(node: a, target: "sm_90", tvmVersion: "t"), keyB = PlanCache.key(node: b, target: "sm_90", tvmVersion: "t")
        let planA = try Self.fixturePlan("ScatterND_7a375313"), planB = try Self.fixturePlan("TopK_8c43395b")
        try cache.store(planA, key: keyA, node: a)
        try cache.store(planB, key: keyB, node: b)
        #expect(cache.load(keyA, node: a) == planA)
        // No temporary file is left beside the entries.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: cache.directory.path).sorted() == ["\(keyA).json", "\(keyB).json"].sorted())

        // Another node's entry copied under A's key: the key it carries does not match.
        let fileA = cache.url(keyA), fileB = cache.url(keyB)
        try FileManager.default.removeItem(at: fileA)
        try FileManager.default.copyItem(at: fileB, to: fileA)
        #expect(cache.lookup(keyA, node: a).map { if case .failure(.keyMismatch) = $0 { true } else { false } } == true)
        // ... and with its key rewritten too: the node digest does not match.
        try Self.edit(fileA) { $0["key"] = keyA }
        #expect(cache.lookup(keyA, node: a).map { if case .failure(.nodeMismatch) = $0 { true } else { false } } == true)
        #expect(cache.load(keyA, node: a) == nil)
        #expect(!FileManager.default.fileExists(atPath: fileA.path), "a mismatched entry is removed")

        // CUDA source edited in place: the plan digest no longer matches.
        try cache.store(planA, key: keyA, node: a)
        try Self.edit(fileA) { obj in
            var plan = obj["plan"] as! [String: Any]
            plan["cuda_source"] = (plan["cuda_source"] as! String) + "\n__global__ void evil() {}\n"
            obj["plan"] = plan
        }
        #expect(cache.lookup(keyA, node: a).map { if case .failure(.planDigestMismatch) = $0 { true } else { false } } == true)
        #expect(cache.load(keyA, node: a) == nil)

        // Corrupt JSON, an empty file, an old bare plan: corrupt.
        for text in [
            "{\"format\": \"tpat-plan-cache-2\", \"key\": ", "",
            String(
                decoding: try Data(contentsOf: Repo.root.appendingPathComponent("tests/fixtures/plans/ScatterND_7a375313.plan.json")),
                as: UTF8.self),
        ] {
            try Data(text.utf8).write(to: fileA)
            #expect(cache.lookup(keyA, node: a).map { if case .failure(.corrupt) = $0 { true } else { false } } == true)
        }
        #expect(cache.lookup("0000", node: a) == nil)
    }

    @Test func aConsistentEntryWithCodeInANameIsStillRejected() throws {
        let cache = PlanCache(directory: try temporaryDirectory())
        let a = try Self.node("a", op: "Relu", n: 4)
        let key = PlanCache.key(node: a, target: "sm_90", tvmVersion: "t")
        // Someone who recomputes the digests still cannot put code where a name goes.
        var plan = try Self.fixturePlan()
        let evil = "k();}\nstatic int x = system(\"touch /tmp/pwned\");\nvoid f(){"
        plan.cudaSource += "\n// \(evil)\n"
        plan.kernels[0].name = evil
        try cache.store(plan, key: key, node: a)
        guard case .failure(.invalidPlan(let why))? = cache.lookup(key, node: a) else {
            Issue.record("a plan with code as a kernel name was accepted"); return
        }
        #expect(why.contains("kernel name"))
        for mutate in [
            { (p: inout KernelPlan) in p.compileFlags.append("-Xcompiler=$(touch x)") },
            { (p: inout KernelPlan) in p.target.sm = "sm_1000" },
            { (p: inout KernelPlan) in p.inputs[0].dtype = "float32*" },
            { (p: inout KernelPlan) in p.opType = "ScatterND\n#include </etc/passwd>" },
            { (p: inout KernelPlan) in p.workspaceAlignment = 3 },
        ] {
            var p = try Self.fixturePlan()
            mutate(&p)
            #expect(throws: TPATError.self) { try p.validate() }
        }
    }

    @Test func plannerReplansOverATamperedEntry() async throws {
        // A fake bridge that answers every plan request with a fixed valid plan.
        let answer = try temporaryDirectory().appendingPathComponent("answer.json")
        let planJSON = try Data(contentsOf: Repo.root.appendingPathComponent("tests/fixtures/plans/ScatterND_7a375313.plan.json"))
        try (Data("{\"protocol\": 1, \"ok\": true, \"result\": ".utf8) + planJSON + Data("}".utf8)).write(to: answer)
        let (python, dir) = try Self.fakePython("cat > /dev/null\necho x >> \"$D/calls\"\ncat '\(answer.path)'")
        let cache = PlanCache(directory: try temporaryDirectory())
        let planner = Planner(bridge: PythonBridge(root: Repo.root, python: python.path), cache: cache)
        let node = try Self.node("a", op: "Relu", n: 8)
        let first = try await planner.plan(node, target: "sm_90", tvmVersion: "t")
        #expect(!first.cached)
        #expect(try await planner.plan(node, target: "sm_90", tvmVersion: "t").cached)
        // Tamper: the cached CUDA source changes; the next plan comes from the bridge again.
        try Self.edit(cache.url(first.key)) { obj in
            var plan = obj["plan"] as! [String: Any]
            plan["cuda_source"] = "#include </etc/shadow>\n" + (plan["cuda_source"] as! String)
            obj["plan"] = plan
        }
        let third = try await planner.plan(node, target: "sm_90", tvmVersion: "t")
        #expect(!third.cached)
        #expect(!third.plan.cudaSource.contains("/etc/shadow"))
        #expect(try await planner.plan(node, target: "sm_90", tvmVersion: "t").cached)
        let calls = try String(contentsOf: dir.appendingPathComponent("calls"), encoding: .utf8).split(separator: "\n").count
        #expect(calls == 2)
    }
}

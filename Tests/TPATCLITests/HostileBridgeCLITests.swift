import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 11, item 5 through the `tpat` binary: the bridge's Python is never taken from the working
/// directory; TPAT_BRIDGE_TIMEOUT stops a hung Python; SIGINT/SIGTERM end tpat's Pythons and
/// temporary folders; a Python crash is one `error:` line in a per-model step and fails only its
/// node in a per-node step.
@Suite(.serialized) struct HostileBridgeCLITests {
    static var root: URL { CLITests.root }
    static let realPython = root.appendingPathComponent(".venv/bin/python").path

    struct Run { var process: Process; var stdout: URL; var stderr: URL }

    /// Starts tpat with `env` replacing TPAT_HOME/TPAT_PYTHON/TPAT_BRIDGE_TIMEOUT/TMPDIR as given.
    static func start(_ args: [String], env: [String: String], cwd: URL) throws -> Run {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let p = Process()
        p.executableURL = CLITests.tpat
        p.arguments = args
        p.currentDirectoryURL = cwd
        var e = ProcessInfo.processInfo.environment
        for k in ["TPAT_HOME", "TPAT_PYTHON", "TPAT_BRIDGE_TIMEOUT"] { e.removeValue(forKey: k) }
        e.merge(env) { $1 }
        p.environment = e
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        return Run(process: p, stdout: out, stderr: err)
    }

    static func finish(_ r: Run, within seconds: Double) -> (status: Int32, stdout: String, stderr: String)? {
        let deadline = Date().addingTimeInterval(seconds)
        while r.process.isRunning && Date() < deadline { usleep(50_000) }
        if r.process.isRunning { kill(r.process.processIdentifier, SIGKILL); r.process.waitUntilExit(); return nil }
        r.process.waitUntilExit()
        return (
            r.process.terminationStatus, (try? String(contentsOf: r.stdout, encoding: .utf8)) ?? "",
            (try? String(contentsOf: r.stderr, encoding: .utf8)) ?? ""
        )
    }

    static func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpat-hostile-b-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func script(_ dir: URL, _ name: String, _ body: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try ("#!/bin/sh\nD='\(dir.path)'\nREAL='\(realPython)'\n" + body + "\n").write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        return url
    }

    static func pids(_ dir: URL) -> [Int32] {
        ((try? String(contentsOf: dir.appendingPathComponent("pids"), encoding: .utf8)) ?? "")
            .split(whereSeparator: \.isNewline).compactMap { Int32($0) }
    }

    static func allGone(_ pids: [Int32], within seconds: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if pids.allSatisfy({ kill($0, 0) != 0 && errno == ESRCH }) { return true }
            usleep(50_000)
        }
        return false
    }

    /// Hangs (with a child) on requests whose JSON holds `match`; hands the rest to the real Python.
    static func hangOn(_ match: String) -> String {
        """
        body=$(cat)
        case "$body" in
          *'\(match)'*) echo $$ > "$D/pids"; sleep 300 & echo $! >> "$D/pids"; wait ;;
          *) printf '%s' "$body" | exec "$REAL" "$@" ;;
        esac
        """
    }

    static func fixture(_ name: String) -> String { root.appendingPathComponent("tests/fixtures/models/\(name)").path }

    @Test func anUntrustedWorkingDirectorysPythonIsNeverRun() throws {
        let evil = try Self.tempDir()
        let marker = evil.appendingPathComponent("RAN")
        for python in [".venv/bin/python", "venv/bin/python", "python/.venv/bin/python"] {
            _ = try Self.script(
                evil, python,
                "touch '\(marker.path)'\necho '{\"protocol\": 1, \"ok\": false, \"error\": {\"code\": \"input\", \"reason\": \"evil\"}}'")
        }
        try FileManager.default.createDirectory(at: evil.appendingPathComponent("python/tpat_bridge"), withIntermediateDirectories: true)
        try Data().write(to: evil.appendingPathComponent("python/tpat_bridge/__main__.py"))
        let sub = evil.appendingPathComponent("models/deep")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        for cwd in [evil, sub] {
            let r = try #require(
                Self.finish(try Self.start(["inspect", Self.fixture("verdicts_basic.onnx")], env: [:], cwd: cwd), within: 120))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("Plugin candidates"))
            #expect(!FileManager.default.fileExists(atPath: marker.path), "tpat ran the working directory's Python")
        }
        // TPAT_HOME names the root explicitly; one without the bridge is refused, not searched around.
        let r = try #require(
            Self.finish(
                try Self.start(["inspect", Self.fixture("verdicts_basic.onnx")], env: ["TPAT_HOME": sub.path], cwd: evil), within: 60))
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("error: TPAT_HOME"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker.path))
    }

    @Test func bridgeTimeoutFromTheEnvironmentStopsAHungPython() throws {
        let dir = try Self.tempDir()
        let python = try Self.script(dir, "python", Self.hangOn("infer_shapes"))
        let start = Date()
        let r = try #require(
            Self.finish(
                try Self.start(
                    ["inspect", Self.fixture("verdicts_basic.onnx")],
                    env: ["TPAT_PYTHON": python.path, "TPAT_BRIDGE_TIMEOUT": "2"], cwd: Self.root), within: 200))
        #expect(Date().timeIntervalSince(start) < 150)  // the fake sleeps 300 s
        #expect(r.status == 2)
        let lines = r.stderr.split(whereSeparator: \.isNewline)
        #expect(
            lines.count == 1 && lines[0].hasPrefix("error: ") && lines[0].contains("did not answer 'infer_shapes' within 2 s"),
            "\(r.stderr)")
        let pids = Self.pids(dir)
        #expect(pids.count == 2)
        #expect(Self.allGone(pids), "the hung Python \(pids) outlived tpat")
    }

    @Test(arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))])
    func aSignalEndsThePythonAndRemovesTemporaryFolders(signal: Int32, status: Int32) throws {
        let dir = try Self.tempDir()
        let tmp = dir.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let python = try Self.script(dir, "python", Self.hangOn("\"command\":\"plan\""))
        let out = dir.appendingPathComponent("out")
        let run = try Self.start(
            ["generate", Self.fixture("verdicts_basic.onnx"), "--ops", "TopK", "-o", out.path, "--no-reference"],
            env: ["TPAT_PYTHON": python.path, "TMPDIR": tmp.path, "TPAT_CACHE_DIR": dir.appendingPathComponent("cache").path],
            cwd: Self.root)
        // Wait until tpat is inside the plan request (the version request imports TVM first).
        let deadline = Date().addingTimeInterval(240)
        while Self.pids(dir).count < 2 && Date() < deadline && run.process.isRunning { usleep(100_000) }
        let pids = Self.pids(dir)
        try #require(pids.count == 2, "the plan request never started")
        let planFolders = try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.hasPrefix("tpat-plan-") }
        #expect(planFolders.count == 1, "\(planFolders)")
        kill(run.process.processIdentifier, signal)
        let r = try #require(Self.finish(run, within: 60), "tpat did not exit after the signal")
        #expect(r.status == status, "\(r.stderr)")
        #expect(r.stderr.contains("error: interrupted"))
        #expect(Self.allGone(pids), "the Python \(pids) outlived tpat")
        let left = try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.hasPrefix("tpat-") }
        #expect(left.isEmpty, "left in TMPDIR: \(left)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func aPythonCrashInAPerModelStepIsOneErrorLine() throws {
        let dir = try Self.tempDir()
        let python = try Self.script(
            dir, "python",
            """
            body=$(cat)
            case "$body" in
              *infer_shapes*) echo 'Fatal Python error: Segmentation fault' >&2; kill -SEGV $$ ;;
              *) printf '%s' "$body" | exec "$REAL" "$@" ;;
            esac
            """)
        let r = try #require(
            Self.finish(
                try Self.start(["inspect", Self.fixture("verdicts_basic.onnx")], env: ["TPAT_PYTHON": python.path], cwd: Self.root),
                within: 60))
        #expect(r.status == 2)
        let lines = r.stderr.split(whereSeparator: \.isNewline)
        #expect(lines.count == 1 && lines[0].hasPrefix("error: the Python bridge crashed (signal 11) in 'infer_shapes'"), "\(r.stderr)")
    }

    @Test func aPythonCrashInAPerNodeStepFailsThatNodeOnly() throws {
        // Plans: a TopK node's request crashes the Python; any other node gets a fixed valid plan
        // (no TVM needed). Everything else goes to the real Python.
        let dir = try Self.tempDir()
        let answer = dir.appendingPathComponent("answer.json")
        let plan = try Data(contentsOf: Self.root.appendingPathComponent("tests/fixtures/plans/ScatterND_7a375313.plan.json"))
        try (Data("{\"protocol\": 1, \"ok\": true, \"result\": ".utf8) + plan + Data("}".utf8)).write(to: answer)
        let python = try Self.script(
            dir, "python",
            """
            body=$(cat)
            case "$body" in
              *'"command":"plan"'*)
                model=$(printf '%s' "$body" | sed -n 's/.*"model_path":"\\([^"]*\\)".*/\\1/p' | sed 's#\\\\/#/#g')
                if grep -aq TopK "$model"; then kill -SEGV $$; fi
                cat '\(answer.path)' ;;
              *) printf '%s' "$body" | exec "$REAL" "$@" ;;
            esac
            """)
        let out = dir.appendingPathComponent("out")
        let r = try #require(
            Self.finish(
                try Self.start(
                    [
                        "generate", Self.fixture("verdicts_basic.onnx"), "--nodes", "scatternd_none,topk_k4096", "-o", out.path,
                        "--no-reference",
                    ],
                    env: ["TPAT_PYTHON": python.path, "TPAT_CACHE_DIR": dir.appendingPathComponent("cache").path], cwd: Self.root),
                within: 180))
        #expect(r.status == 3, "\(r.stderr)")  // partial: one node converted, one not
        #expect(r.stdout.contains("Plugins (1)"), "\(r.stdout)")
        #expect(
            r.stdout.contains(
                "\"topk_k4096\" (TopK): [bridge_failed] cannot plan node 'topk_k4096' (TopK): the Python bridge crashed (signal 11)"),
            "\(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("tpat-generate.json").path))
    }
}

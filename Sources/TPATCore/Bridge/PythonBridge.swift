import Foundation
import Logging
import Subprocess

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// The thin, typed channel to the Python engines (ONNX shape inference, ONNX Runtime, TVM,
/// TensorRT's parser). One request per process: JSON on stdin, one JSON answer on stdout, both
/// following schemas/bridge.schema.json.
public struct PythonBridge: Sendable {
    /// The project root: holds python/tpat_bridge and, usually, .venv.
    public let root: URL
    public let python: String
    /// Extra folders for LD_LIBRARY_PATH (TensorRT-RTX's libtensorrt_rtx.so symlink).
    public let libraryPaths: [String]

    public init(root: URL, python: String, libraryPaths: [String] = []) {
        self.root = root
        self.python = python
        self.libraryPaths = libraryPaths
    }

    /// Finds the project root and its Python. The root is TPAT_HOME when set, else the folder
    /// holding the installed tool (upward from the executable). The working directory is never
    /// searched: a model's folder may hold a `.venv/bin/python` that must not run. The Python is
    /// TPAT_PYTHON, else ROOT/.venv/bin/python.
    public static func locate() throws(TPATError) -> PythonBridge {
        let env = ProcessInfo.processInfo.environment
        let marker = "python/tpat_bridge/__main__.py"
        var root: URL?
        if let home = env["TPAT_HOME"], !home.isEmpty {
            let dir = URL(fileURLWithPath: home).standardizedFileURL
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent(marker).path) else {
                throw TPATError(.bridge, "TPAT_HOME (\(home)) holds no python/tpat_bridge")
            }
            root = dir
        } else {
            var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
                .standardizedFileURL
            for _ in 0..<8 {
                if FileManager.default.fileExists(atPath: dir.appendingPathComponent(marker).path) { root = dir; break }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        guard let root else {
            throw TPATError(
                .bridge, "cannot find TPAT's python/tpat_bridge beside the tpat executable (set TPAT_HOME to the repository root)")
        }
        let python = env["TPAT_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? root.appendingPathComponent(".venv/bin/python").path
        guard python.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: python) else {
            throw TPATError(.bridge, "no Python at \(python): run `make venv` (or set TPAT_PYTHON to an absolute path)")
        }
        let link = root.appendingPathComponent(".venv/tpat-lib").path
        return PythonBridge(root: root, python: python, libraryPaths: [link])
    }

    /// How long one request of each kind may take before its Python process group is ended
    /// (seconds). TPAT_BRIDGE_TIMEOUT (seconds) replaces every entry.
    public static let defaultTimeouts: [String: Int] = [
        "version": 600, "validate": 600, "infer_shapes": 600, "fold_ifs": 600, "probe": 600, "reference": 900,
        "plan": 1800, "engine": 3600, "bench": 3600, "tune": 86400,
    ]

    /// The timeout of a request kind: TPAT_BRIDGE_TIMEOUT, else `defaultTimeouts`, else one hour.
    public static func timeout(command: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(TPATError)
        -> Duration
    {
        if let text = environment["TPAT_BRIDGE_TIMEOUT"], !text.isEmpty {
            guard let s = Double(text), s.isFinite, s > 0, s <= 1e7 else {
                throw TPATError(.input, "TPAT_BRIDGE_TIMEOUT must be a positive number of seconds, not '\(text.prefix(40))'")
            }
            return .milliseconds(Int64(s * 1000))
        }
        return .seconds(defaultTimeouts[command] ?? 3600)
    }

    /// The `command` of an encoded request ("?" when it has none).
    static func command(of body: Data) -> String {
        ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["command"] as? String ?? "?"
    }

    /// Sends one request and decodes the `result` of a successful answer as `R`.
    /// With `progress`, the bridge's stderr (progress lines) goes straight to the user's terminal.
    /// `timeout`: nil takes the request kind's (`timeout(command:)`).
    public func call<Q: Encodable, R: Decodable>(_ request: Q, as: R.Type, timeout: Duration? = nil, progress: Bool = false)
        async throws(TPATError) -> R
    {
        let body: Data
        do { body = try JSONEncoder().encode(request) } catch { throw TPATError(.bridge, "cannot encode request: \(error)") }
        let log = Logger(label: "tpat.bridge")
        let command = ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["command"] as? String ?? "?"
        let start = ContinuousClock.now
        log.debug("bridge: \(command) (\(python) -m tpat_bridge)")
        defer {
            let d = (ContinuousClock.now - start).components
            log.debug("bridge: \(command) done in \(String(format: "%.2f s", Double(d.seconds) + Double(d.attoseconds) / 1e18))")
        }
        let raw = try await send(body, timeout: timeout, progress: progress)
        let answer: BridgeAnswer<R>
        do { answer = try JSONDecoder().decode(BridgeAnswer<R>.self, from: raw) } catch {
            throw TPATError(.bridge, "bridge answer does not match the schema: \(error)")
        }
        if let error = answer.error {
            throw TPATError(error.code == "input" ? .input : (error.code == "model" ? .model : .bridge), error.reason, code: error.code)
        }
        guard answer.ok, let result = answer.result else { throw TPATError(.bridge, "bridge answered without a result") }
        return result
    }

    /// Runs `python -m tpat_bridge` with `body` on stdin in a process group of its own; returns
    /// stdout. Past the timeout (or when tpat is cancelled or gets SIGINT/SIGTERM, see
    /// `ChildProcesses`) the whole group gets SIGTERM, then SIGKILL 2 s later.
    public func send(_ body: Data, timeout: Duration? = nil, progress: Bool = false) async throws(TPATError) -> Data {
        let command = Self.command(of: body)
        let limit: Duration
        if let timeout { limit = timeout } else { limit = try Self.timeout(command: command) }
        let env = ProcessInfo.processInfo.environment
        let pythonPath = ([root.appendingPathComponent("python").path] + (env["PYTHONPATH"].map { [$0] } ?? [])).joined(separator: ":")
        let ldPath = (libraryPaths + (env["LD_LIBRARY_PATH"].map { [$0] } ?? [])).joined(separator: ":")
        let environment = Environment.inherit.updating(["PYTHONPATH": pythonPath, "LD_LIBRARY_PATH": ldPath, "PYTHONUNBUFFERED": "1"])
        var options = PlatformOptions()
        options.processGroupID = 0
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(2))]
        let configuration = Configuration(
            executable: .path(FilePath(python)), arguments: ["-m", "tpat_bridge"], environment: environment,
            platformOptions: options)
        ChildProcesses.shared.parkIfStopping()
        enum Outcome: Sendable { case finished(TerminationStatus, Data, String), timedOut }
        let outcome: Outcome
        do {
            outcome = try await withThrowingTaskGroup(of: Outcome.self) { group in
                group.addTask {
                    if progress {
                        let r = try await Subprocess.run(
                            configuration, input: .data(body), output: .data(limit: 1 << 30),
                            error: .currentStandardError
                        ) { execution in
                            ChildProcesses.shared.add(execution.processIdentifier.value)
                        }
                        ChildProcesses.shared.remove(r.processIdentifier.value)
                        return .finished(r.terminationStatus, r.standardOutput, "")
                    }
                    let r = try await Subprocess.run(
                        configuration, input: .data(body), output: .data(limit: 1 << 30),
                        error: .string(limit: 1 << 20)
                    ) { execution in
                        ChildProcesses.shared.add(execution.processIdentifier.value)
                    }
                    ChildProcesses.shared.remove(r.processIdentifier.value)
                    return .finished(r.terminationStatus, r.standardOutput, r.standardError)
                }
                group.addTask {
                    try await Task.sleep(for: limit)
                    return .timedOut
                }
                let first = try await group.next()!
                group.cancelAll()
                return first
            }
        } catch {
            ChildProcesses.shared.parkIfStopping()
            throw TPATError(.bridge, "cannot run the Python bridge (\(python)): \(error)")
        }
        ChildProcesses.shared.parkIfStopping()  // ended by a signal: not an answer
        switch outcome {
        case .timedOut:
            throw TPATError(
                .bridge,
                "the Python bridge did not answer '\(command)' within \(Self.seconds(limit)) s and was stopped (set TPAT_BRIDGE_TIMEOUT to allow longer)"
            )
        case let .finished(status, stdout, stderr):
            let tail = stderr.split(whereSeparator: \.isNewline).last.map { String($0.prefix(500)) } ?? ""
            switch status {
            case .exited(0):
                return stdout
            case .exited(let code):
                throw TPATError(.bridge, "the Python bridge ended with exit code \(code) in '\(command)'\(tail.isEmpty ? "" : ": \(tail)")")
            case .signaled(let signal):
                throw TPATError(.bridge, "the Python bridge crashed (signal \(signal)) in '\(command)'\(tail.isEmpty ? "" : ": \(tail)")")
            }
        }
    }

    static func seconds(_ d: Duration) -> String {
        let (s, atto) = d.components
        return atto == 0 ? "\(s)" : String(format: "%.1f", Double(s) + Double(atto) / 1e18)
    }
}

/// The envelope of every bridge answer.
public struct BridgeAnswer<R: Decodable>: Decodable {
    public var protocolVersion: Int
    public var ok: Bool
    public var result: R?
    public var error: BridgeFailure?

    enum CodingKeys: String, CodingKey { case protocolVersion = "protocol", ok, result, error }
}

/// A structured failure from the bridge: a stable code and a one-line reason.
public struct BridgeFailure: Codable, Sendable, Equatable {
    public var code: String
    public var reason: String
}

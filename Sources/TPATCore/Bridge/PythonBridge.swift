import Foundation
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

    /// Finds the project root (TPAT_HOME, else upward from the executable and the working
    /// directory) and its Python (TPAT_PYTHON, else ROOT/.venv/bin/python).
    public static func locate() throws(TPATError) -> PythonBridge {
        let env = ProcessInfo.processInfo.environment
        var candidates: [URL] = []
        if let home = env["TPAT_HOME"] { candidates.append(URL(fileURLWithPath: home)) }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent())
        candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        var root: URL?
        search: for start in candidates {
            var dir = start.standardizedFileURL
            for _ in 0..<8 {
                if FileManager.default.fileExists(atPath: dir.appendingPathComponent("python/tpat_bridge/__main__.py").path) {
                    root = dir; break search
                }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        guard let root else {
            throw TPATError(.bridge, "cannot find TPAT's python/tpat_bridge (set TPAT_HOME to the repository root)")
        }
        let python = env["TPAT_PYTHON"] ?? root.appendingPathComponent(".venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw TPATError(.bridge, "no Python at \(python): run `make venv` (or set TPAT_PYTHON)")
        }
        let link = root.appendingPathComponent(".venv/tpat-lib").path
        return PythonBridge(root: root, python: python, libraryPaths: [link])
    }

    /// Sends one request and decodes the `result` of a successful answer as `R`.
    /// With `progress`, the bridge's stderr (progress lines) goes straight to the user's terminal.
    public func call<Q: Encodable, R: Decodable>(_ request: Q, as: R.Type, timeout: Duration = .seconds(3600), progress: Bool = false) async throws(TPATError) -> R {
        let body: Data
        do { body = try JSONEncoder().encode(request) } catch { throw TPATError(.bridge, "cannot encode request: \(error)") }
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

    /// Runs `python -m tpat_bridge` with `body` on stdin; returns stdout.
    public func send(_ body: Data, timeout: Duration, progress: Bool = false) async throws(TPATError) -> Data {
        let env = ProcessInfo.processInfo.environment
        let pythonPath = ([root.appendingPathComponent("python").path] + (env["PYTHONPATH"].map { [$0] } ?? [])).joined(separator: ":")
        let ldPath = (libraryPaths + (env["LD_LIBRARY_PATH"].map { [$0] } ?? [])).joined(separator: ":")
        let environment = Environment.inherit.updating(["PYTHONPATH": pythonPath, "LD_LIBRARY_PATH": ldPath, "PYTHONUNBUFFERED": "1"])
        do {
            if progress {
                let result = try await Subprocess.run(
                    .path(FilePath(python)), arguments: ["-m", "tpat_bridge"], environment: environment,
                    input: .data(body), output: .data(limit: 1 << 30), error: .currentStandardError)
                guard case .exited(0) = result.terminationStatus else {
                    throw TPATError(.bridge, "Python bridge ended with \(result.terminationStatus)")
                }
                return result.standardOutput
            }
            let result = try await Subprocess.run(
                .path(FilePath(python)),
                arguments: ["-m", "tpat_bridge"],
                environment: environment,
                input: .data(body),
                output: .data(limit: 1 << 30),
                error: .string(limit: 1 << 20)
            )
            guard case .exited(0) = result.terminationStatus else {
                let tail = (result.standardError ?? "").split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
                throw TPATError(.bridge, "Python bridge ended with \(result.terminationStatus)\(tail.isEmpty ? "" : ": \(tail)")")
            }
            return result.standardOutput
        } catch let e as TPATError {
            throw e
        } catch {
            throw TPATError(.bridge, "cannot run the Python bridge (\(python)): \(error)")
        }
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

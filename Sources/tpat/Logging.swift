import ArgumentParser
import Foundation
import Logging
import TPATCore

/// `-v/--verbose` and `-q/--quiet`, on every command. Results go to standard output; progress
/// lines, notes, warnings and debug lines go to standard error through swift-log.
struct LogOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Also print debug lines on stderr (each Python bridge call and its time, the plan cache).")
    var verbose = false
    @Flag(name: .shortAndLong, help: "Print no progress lines or notes; results, warnings and errors only.") var quiet = false

    func validate() throws {
        if verbose && quiet { throw ValidationError("choose one of --verbose and --quiet") }
    }

    var level: Logger.Level { verbose ? .debug : (quiet ? .warning : .info) }

    /// Sets up swift-log once for the process and returns the CLI's logger.
    func bootstrap() -> Logger {
        let level = self.level
        LogSetup.once(level)
        var logger = Logger(label: "tpat")
        logger.logLevel = level
        return logger
    }
}

enum LogSetup {
    nonisolated(unsafe) private static var done = false
    private static let lock = NSLock()
    static func once(_ level: Logger.Level) {
        lock.lock(); defer { lock.unlock() }
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var h = StderrLogHandler(label: label)
            h.logLevel = level
            return h
        }
    }
}

/// Writes one line per message to standard error: info lines (progress) as they are, the
/// others prefixed `debug:`, `note:`, `warning:`, `error:`.
struct StderrLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let prefix: String
        switch event.level {
        case .trace, .debug: prefix = "debug: "
        case .info: prefix = ""
        case .notice: prefix = "note: "
        case .warning: prefix = "warning: "
        case .error, .critical: prefix = "error: "
        }
        FileHandle.standardError.write(Data((prefix + SafeText.terminal(event.message.description) + "\n").utf8))
    }
}

extension Logger {
    /// The stage's diagnostics, after its result: warnings and errors always, notes unless --quiet.
    func report(_ collector: DiagnosticsCollector) {
        for d in collector.diagnostics {
            let text = (d.node.map { "node \($0.debugDescription): " } ?? "") + d.message
            switch d.severity {
            case .note: notice("\(text)")
            case .warning: warning("\(text)")
            case .error: error("\(text)")
            }
        }
    }
}

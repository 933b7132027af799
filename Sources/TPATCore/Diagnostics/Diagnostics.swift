import Foundation

/// A non-fatal finding of a pipeline stage (a node that could not be planned, a check that could
/// not be made). Stages append to a `DiagnosticsCollector`; the CLI prints them after the result.
public struct Diagnostic: Codable, Equatable, Sendable {
    public enum Severity: String, Codable, Sendable { case note, warning, error }
    public var severity: Severity
    public var message: String
    /// The node the finding is about, when there is one.
    public var node: String?

    public init(_ severity: Severity, _ message: String, node: String? = nil) {
        self.severity = severity
        self.message = message
        self.node = node
    }

    public var rendered: String {
        let prefix = node.map { "\(severity.rawValue): node '\($0)': " } ?? "\(severity.rawValue): "
        return prefix + message
    }
}

/// Collects diagnostics from the stages of one run.
public final class DiagnosticsCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Diagnostic] = []

    public init() {}

    public func emit(_ diagnostic: Diagnostic) {
        lock.lock(); defer { lock.unlock() }
        items.append(diagnostic)
    }

    public var diagnostics: [Diagnostic] {
        lock.lock(); defer { lock.unlock() }
        return items
    }
}

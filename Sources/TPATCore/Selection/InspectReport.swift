import Foundation

/// The result of `tpat inspect`: the model's op histogram and one verdict per node
/// (schema: schemas/inspect-report.schema.json).
public struct InspectReport: Codable, Sendable {
    public static let formatVersion = 1
    public var format: Int = InspectReport.formatVersion
    public var model: String
    public var opsets: [String: Int64]
    public var rulesSource: String
    /// Op type -> node count.
    public var histogram: [String: Int]
    public var nodes: [NodeVerdict]
    /// Names of the nodes that need a plugin.
    public var pluginCandidates: [String]
    public var probe: ProbeSummary?
    public var warnings: [String]
    /// The rule set used: "10", "11" or "rtx" (`--trt`).
    public var trt: String? = nil
    /// The ONNX checker's complaint when it rejects the model (inspect goes on).
    public var checker: String? = nil
    /// What chose the plugin candidates: "parser" (an installed parser's answers) or "table".
    public var selectedBy: String? = nil
    /// Nodes that need a plugin but cannot become one (see each node's `blocker`).
    public var blocked: [String] = []
    /// Verdicts of the nodes inside If/Loop/Scan bodies, named "node > attribute > node"
    /// (inspected only: not plugin candidates yet).
    public var subgraphNodes: [NodeVerdict] = []

    public struct ProbeSummary: Codable, Sendable {
        public var parser: String?
        public var note: String?
        /// Nodes where the parser and the table disagree.
        public var disagreements: [String]
        /// How the parser was asked: "whole-model", "per-node" or both; number of parses.
        public var mode: String? = nil
        public var parses: Int? = nil
    }

    public var counts: [NodeVerdict.Verdict: Int] {
        Dictionary(grouping: nodes, by: \.verdict).mapValues(\.count)
    }

    public func json() throws(TPATError) -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { return try e.encode(self) } catch { throw TPATError(.io, "cannot encode report: \(error)") }
    }

    /// The human-readable report: histogram, node table, plugin candidates.
    public func text() -> String {
        var out = "Model: \(model)\n"
        out += "Opsets: " + opsets.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        out += "Rules: \(rulesSource)\n\n"
        out += "Op histogram (\(nodes.count) nodes):\n"
        for (op, n) in histogram.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
            out += "  \(op.padding(toLength: max(24, op.count), withPad: " ", startingAt: 0)) \(n)\n"
        }
        out += "\nNodes:\n"
        let nameWidth = min(40, max(4, nodes.map(\.name.count).max() ?? 4))
        let opWidth = max(8, nodes.map(\.opType.count).max() ?? 8)
        for n in nodes {
            let name = n.name.count > nameWidth ? String(n.name.prefix(nameWidth - 1)) + "…" : n.name
            var line = "  \(name.padding(toLength: nameWidth, withPad: " ", startingAt: 0))  \(n.opType.padding(toLength: opWidth, withPad: " ", startingAt: 0))  \(n.verdict.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0))  "
            switch n.verdict {
            case .supported: break
            case .restricted: line += n.reason
            case .unsupported: line += "[\(n.rule ?? "-")] \(n.reason)"
            }
            if !n.unchecked.isEmpty { line += " (unchecked: \(n.unchecked.joined(separator: "; ")))" }
            if let p = n.probe {
                line += p.imported ? "  | parser: imports" : "  | parser: fails: \(p.error ?? "?")"
            }
            if let b = n.blocker { line += "  | cannot be a plugin [\(b.code)]" }
            out += line + "\n"
        }
        let inner = subgraphNodes.filter { $0.verdict != .supported }
        if !subgraphNodes.isEmpty {
            out += "\nInside If/Loop/Scan bodies (\(subgraphNodes.count) nodes, \(inner.count) not plainly supported):\n"
            for n in inner {
                out += "  \(n.name)  \(n.opType)  \(n.verdict.rawValue)  " + (n.verdict == .unsupported ? "[\(n.rule ?? "-")] " : "") + n.reason + "\n"
            }
        }
        let c = counts
        out += "\nSummary: \(c[.supported] ?? 0) supported, \(c[.restricted] ?? 0) restricted-but-fine, \(c[.unsupported] ?? 0) unsupported\n"
        if let probe {
            out += "Probe: \(probe.parser ?? "none") \(probe.note.map { "(\($0))" } ?? "")"
            if let m = probe.mode { out += " [\(m), \(probe.parses ?? 0) parse(s)]" }
            out += "\n"
            if !probe.disagreements.isEmpty { out += "  parser disagrees with the table on: \(probe.disagreements.joined(separator: ", "))\n" }
        }
        for w in warnings { out += "warning: \(w)\n" }
        if !blocked.isEmpty {
            out += "\nCannot become plugins (\(blocked.count)):\n"
            for n in nodes where blocked.contains(n.name) {
                if let b = n.blocker { out += "  \(n.name) (\(n.opType)) [\(b.code)]: \(b.reason)\n    instead: \(b.suggestion)\n" }
            }
        }
        out += "\nPlugin candidates (\(pluginCandidates.count)):\n"
        if selectedBy == "parser" { out += "  (what the installed parser rejects; the table's verdict beside)\n" }
        if pluginCandidates.isEmpty {
            out += subgraphNodes.contains { $0.verdict == .unsupported }
                ? "  none at the top level (see the bodies above)\n" : "  none: TensorRT's parser should import every node\n"
        }
        for name in pluginCandidates {
            if let n = nodes.first(where: { $0.name == name }) {
                let why = n.probe.flatMap { $0.imported ? nil : "parser: \($0.error ?? "rejected")" }
                out += "  \(n.name) (\(n.opType) \(n.inputs.joined(separator: ", ")) -> \(n.outputs.joined(separator: ", "))): "
                out += (why.map { "\($0); table: \(n.verdict.rawValue)" + (n.verdict == .unsupported ? " (\(n.reason))" : "") } ?? n.reason) + "\n"
            }
        }
        return out
    }
}

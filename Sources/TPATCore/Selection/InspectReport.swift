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
    /// Names of the nodes that need a plugin (body nodes by path, see `subgraphNodes`).
    public var pluginCandidates: [String]
    public var probe: ProbeSummary?
    public var warnings: [String]
    /// Whose verdicts these are: nil or "tensorrt" (TensorRT's ONNX parser), "qnn" (QNN's HTP backend).
    public var target: String? = nil
    /// The rule set used: "10", "11" or "rtx" (`--trt`).
    public var trt: String? = nil
    /// The ONNX checker's complaint when it rejects the model (inspect goes on).
    public var checker: String? = nil
    /// What chose the plugin candidates: "parser" (an installed parser's answers) or "table".
    public var selectedBy: String? = nil
    /// Nodes that need a plugin but cannot become one (see each node's `blocker`).
    public var blocked: [String] = []
    /// Verdicts of the nodes inside If/Loop/Scan bodies, named "node > attribute > node"; `index`
    /// is the node's index in its body. Candidates and blocked ones are in the lists above.
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
        let data: Data
        do { data = try e.encode(self) } catch { throw TPATError(.io, "cannot encode report: \(error)") }
        return SafeText.jsonEscapingInvisibles(data)
    }

    /// The human-readable report: histogram, node table, plugin candidates. Every piece of model
    /// text goes through `SafeText.terminal`, so a name cannot forge lines or drive the terminal.
    public func text() -> String {
        let t = SafeText.terminal
        var out = "Model: \(t(model))\n"
        out +=
            "Opsets: "
            + opsets.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : t($0.key)) \($0.value)" }.joined(separator: ", ")
            + "\n"
        out += (target == VendorBackend.qnn.rawValue ? "Asked: " : "Rules: ") + "\(rulesSource)\n\n"
        out += "Op histogram (\(nodes.count) nodes):\n"
        for (op, n) in histogram.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
            let op = t(op)
            out += "  \(op.padding(toLength: max(24, op.count), withPad: " ", startingAt: 0)) \(n)\n"
        }
        out += "\nNodes:\n"
        let nameWidth = min(40, max(4, nodes.map { t($0.name).count }.max() ?? 4))
        let opWidth = max(8, nodes.map { t($0.opType).count }.max() ?? 8)
        for n in nodes {
            let full = t(n.name)
            let name = full.count > nameWidth ? String(full.prefix(nameWidth - 1)) + "…" : full
            var line =
                "  \(name.padding(toLength: nameWidth, withPad: " ", startingAt: 0))  \(t(n.opType).padding(toLength: opWidth, withPad: " ", startingAt: 0))  \(n.verdict.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0))  "
            switch n.verdict {
            case .supported: break
            case .restricted: line += t(n.reason)
            case .unsupported: line += "[\(t(n.rule ?? "-"))] \(t(n.reason))"
            }
            if !n.unchecked.isEmpty { line += " (unchecked: \(t(n.unchecked.joined(separator: "; "))))" }
            if let p = n.probe {
                line += p.imported ? "  | parser: imports" : "  | parser: fails: \(t(p.error ?? "?"))"
            }
            if let b = n.blocker { line += "  | cannot be a plugin [\(b.code)]" }
            out += line + "\n"
        }
        let inner = subgraphNodes.filter { $0.verdict != .supported }
        if !subgraphNodes.isEmpty {
            out += "\nInside If/Loop/Scan bodies (\(subgraphNodes.count) nodes, \(inner.count) not plainly supported):\n"
            for n in inner {
                out +=
                    "  \(t(n.name))  \(t(n.opType))  \(n.verdict.rawValue)  " + (n.verdict == .unsupported ? "[\(t(n.rule ?? "-"))] " : "")
                    + t(n.reason)
                    + (n.blocker.map { "  | cannot be a plugin [\($0.code)]" } ?? "") + "\n"
            }
        }
        let c = counts
        out +=
            target == VendorBackend.qnn.rawValue
            ? "\nSummary: \(c[.supported] ?? 0) taken by QNN's HTP backend, \(c[.unsupported] ?? 0) refused\n"
            : "\nSummary: \(c[.supported] ?? 0) supported, \(c[.restricted] ?? 0) restricted-but-fine, \(c[.unsupported] ?? 0) unsupported\n"
        if let probe {
            out += "Probe: \(t(probe.parser ?? "none")) \(probe.note.map { "(\(t($0)))" } ?? "")"
            if let m = probe.mode { out += " [\(m), \(probe.parses ?? 0) parse(s)]" }
            out += "\n"
            if !probe.disagreements.isEmpty {
                out += "  parser disagrees with the table on: \(t(probe.disagreements.joined(separator: ", ")))\n"
            }
        }
        for w in warnings { out += "warning: \(t(w))\n" }
        if !blocked.isEmpty {
            out += "\nCannot become plugins (\(blocked.count)):\n"
            for n in nodes + subgraphNodes where blocked.contains(n.name) {
                if let b = n.blocker {
                    out += "  \(t(n.name)) (\(t(n.opType))) [\(b.code)]: \(t(b.reason))\n    instead: \(t(b.suggestion))\n"
                }
            }
        }
        out += "\nPlugin candidates (\(pluginCandidates.count)):\n"
        if selectedBy == "parser" { out += "  (what the installed parser rejects; the table's verdict beside)\n" }
        if pluginCandidates.isEmpty {
            out +=
                target == VendorBackend.qnn.rawValue
                ? "  none: QNN's HTP backend takes every node\n" : "  none: TensorRT's parser should import every node\n"
        }
        for name in pluginCandidates {
            if let n = nodes.first(where: { $0.name == name }) ?? subgraphNodes.first(where: { $0.name == name }) {
                let why = n.probe.flatMap { $0.imported ? nil : "parser: \(t($0.error ?? "rejected"))" }
                out += "  \(t(n.name)) (\(t(n.opType)) \(t(n.inputs.joined(separator: ", "))) -> \(t(n.outputs.joined(separator: ", ")))): "
                out +=
                    (why.map { "\($0); table: \(n.verdict.rawValue)" + (n.verdict == .unsupported ? " (\(t(n.reason)))" : "") }
                        ?? t(n.reason)) + "\n"
            }
        }
        return out
    }
}

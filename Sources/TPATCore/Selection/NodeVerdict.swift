/// What TensorRT's ONNX parser will do with one node, and why.
public struct NodeVerdict: Codable, Sendable, Equatable {
    public enum Verdict: String, Codable, Sendable {
        /// Imported, no restrictions apply.
        case supported
        /// The op has restrictions; this node meets them (or they cannot be checked statically).
        case restricted
        /// The parser rejects the node: a plugin candidate.
        case unsupported
    }

    public var index: Int
    public var name: String
    public var opType: String
    public var domain: String
    public var verdict: Verdict
    /// For an unsupported node, the rule that decided it: a restriction id, "dtype" or "op".
    /// Restricted nodes list the restrictions they meet in `reason`.
    public var rule: String?
    public var reason: String
    /// Per-node input and output signatures ("float32[N,8]").
    public var inputs: [String]
    public var outputs: [String]
    /// Restrictions that could not be checked (non-constant inputs, unknown ranks).
    public var unchecked: [String]
    /// The real parser's answer with --probe, else nil.
    public var probe: ProbeAnswer?
    /// Why this node can never become a plugin (PluginBlockers), else nil.
    public var blocker: Blocker? = nil

    public struct Blocker: Codable, Sendable, Equatable {
        /// `feeds_shape_input`, `non_tensor` or `unknown_rank` (PluginBlockers).
        public var code: String
        public var reason: String
        /// What to do instead.
        public var suggestion: String
    }

    public struct ProbeAnswer: Codable, Sendable, Equatable {
        public var imported: Bool
        public var error: String?
    }
}

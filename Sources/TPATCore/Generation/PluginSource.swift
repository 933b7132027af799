import Foundation

/// One plugin to generate: a kernel plan and the model nodes it replaces (identical nodes share
/// one plugin).
public struct PluginSource: Sendable {
    /// Plugin name = ONNX op_type of the rewritten node = C symbol stem ("ScatterND_1a2b3c4d").
    public var name: String
    public var node: ExtractedNode
    /// The kernel plans the plugin can run, one per tactic; TensorRT times them at engine build
    /// time (getValidTactics/setTactic). Tactic 0 is TPAT's default choice.
    public var tactics: [KernelPlan]
    /// Names of the model nodes this plugin replaces.
    public var coveredNodes: [String]

    /// The default plan (tactic 0): types, shapes and symbols are the same in every tactic.
    public var plan: KernelPlan { tactics[0] }

    public init(name: String, node: ExtractedNode, tactics: [KernelPlan], coveredNodes: [String]) {
        precondition(!tactics.isEmpty)
        self.name = name; self.node = node; self.tactics = tactics; self.coveredNodes = coveredNodes
    }

    /// How a tactic's plan was lowered, for comments and messages: "tpat lowering: <detail>" or
    /// "TVM default lowering" (from the plan's `lowering` fields).
    public static func lowering(of plan: KernelPlan) -> String {
        plan.usesTPATLowering ? "tpat lowering: \(plan.loweringDetail ?? plan.lowering)" : "TVM default lowering"
    }

    public static let version = "1"
    public static let namespace = "tpat"

    /// The name for a node with the given plan-cache key: ASCII letters and digits of the op type
    /// (at most 48) and of the key only, so it is safe as a C identifier, a file and a CMake name.
    public static func name(opType: String, key: String) -> String {
        let stem = String(SafeText.identifier(opType).filter { $0 != "_" }.prefix(48))
        let suffix = String(SafeText.identifier(key).filter { $0 != "_" }.prefix(8))
        return "\(stem.isEmpty || stem.first!.isNumber ? "Op" + stem : stem)_\(suffix.isEmpty ? "0" : suffix)"
    }
}

/// TensorRT's element type for a plan dtype, and how the plugin carries it. TensorRT has no
/// unsigned 32/64-bit tensors: those travel as INT32/INT64 with the same bits (Cast nodes around
/// the plugin in the rewritten model convert bit-exactly).
public enum TensorRTType {
    public static func name(_ dtype: String) -> String? {
        switch dtype {
        case "float32": "kFLOAT"
        case "float16": "kHALF"
        case "bfloat16": "kBF16"
        case "int8": "kINT8"
        case "uint8": "kUINT8"
        case "int32", "uint32": "kINT32"
        case "int64", "uint64": "kINT64"
        case "bool": "kBOOL"
        default: nil
        }
    }

    /// The ONNX type the plugin's tensor has in the rewritten model, when it differs from the node's.
    public static func bridged(_ dtype: String) -> ONNXDataType? {
        switch dtype {
        case "uint32": .int32
        case "uint64": .int64
        default: nil
        }
    }

    public static func cType(_ paramType: String) -> String {
        switch paramType {
        case "int32": "int32_t"
        case "int64": "int64_t"
        case "uint32": "uint32_t"
        case "uint64": "uint64_t"
        case "int8": "int8_t"
        case "int16": "int16_t"
        case "uint8": "uint8_t"
        case "uint16": "uint16_t"
        case "bool": "bool"
        default: "int64_t"
        }
    }
}

import Crypto
import Foundation

/// Kernel plans on disk, keyed by the node's canonical one-node model (op, attributes, dtypes,
/// shapes, constant inputs), the target, the TVM version and the plan format. Location:
/// $TPAT_CACHE_DIR, else $XDG_CACHE_HOME/tpat, else ~/.cache/tpat; plans live in plans/.
public struct PlanCache: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    public static func standard() -> PlanCache {
        let env = ProcessInfo.processInfo.environment
        let base: URL
        if let dir = env["TPAT_CACHE_DIR"], !dir.isEmpty {
            base = URL(fileURLWithPath: dir)
        } else if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty {
            base = URL(fileURLWithPath: xdg).appendingPathComponent("tpat")
        } else {
            base = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/tpat")
        }
        return PlanCache(directory: base.appendingPathComponent("plans"))
    }

    /// The cache key of a node for a target and TVM version.
    public static func key(node: ExtractedNode, target: String, tvmVersion: String, planner: String = "", schedule: String = "dlight") -> String {
        var h = SHA256()
        h.update(data: node.canonicalBytes)
        h.update(data: Data("\u{0}\(target)\u{0}\(tvmVersion)\u{0}\(planner)\u{0}\(schedule)\u{0}plan-format-1".utf8))
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The planner's own sources: a change to any of them changes `plannerRevision`.
    public static let plannerSources = [
        "python/tpat_bridge/planner.py", "python/tpat_bridge/plan_expr.py", "python/tpat_bridge/lowerings.py",
        "python/tpat_bridge/lowering_resize.py", "python/tpat_bridge/lowering_topk.py",
        "python/tpat_bridge/lowering_cumsum.py", "python/tpat_bridge/lowering_layernorm.py",
        "python/tpat_bridge/lowering_indexing.py", "python/tpat_bridge/lowering_elementwise.py",
        "python/tpat_bridge/lowering_ir.py", "python/tpat_bridge/refusals.py",
    ]

    /// A digest of the planner's own sources (`plannerSources`), so a changed planner never serves
    /// plans made by an older one.
    public static func plannerRevision(root: URL) -> String {
        var h = SHA256()
        for f in plannerSources {
            h.update(data: (try? Data(contentsOf: root.appendingPathComponent(f))) ?? Data(f.utf8))
        }
        return h.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// A digest of every file in a folder (a MetaSchedule database), names and contents.
    public static func digest(folder: URL) -> String {
        var h = SHA256()
        let fm = FileManager.default
        let files = (fm.enumerator(atPath: folder.path)?.compactMap { $0 as? String } ?? []).sorted()
        for f in files {
            let u = folder.appendingPathComponent(f)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: u.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            h.update(data: Data(f.utf8))
            h.update(data: (try? Data(contentsOf: u)) ?? Data())
        }
        return h.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    func url(_ key: String) -> URL { directory.appendingPathComponent("\(key).json") }

    public func load(_ key: String) -> KernelPlan? {
        guard let data = try? Data(contentsOf: url(key)) else { return nil }
        return try? KernelPlan.decode(data)
    }

    public func store(_ plan: KernelPlan, key: String) throws(TPATError) {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        let data: Data
        do { data = try e.encode(plan) } catch { throw TPATError(.io, "cannot encode plan: \(error)") }
        try AtomicFiles.write([(url(key), data)])
    }
}
